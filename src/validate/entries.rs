//! Parsers for the entries of a validation file: assertions
//! (`document:1#view@user:alice with {"ip": "10.0.0.1"}`), expected-relations keys
//! (`document:1#view`) and expected subjects
//! (`[user:* - {user:bob}] is <document:1#viewer>/<folder:f#viewer>`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{Context, ModelError, ObjectRef, SubjectRef, parse_relationship, parse_subject};

/// A malformed entry: what is wrong, and where in the entry text (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EntryError {
    pub offset: usize,
    pub message: String,
}

fn err(offset: usize, message: impl Into<String>) -> EntryError {
    EntryError {
        offset,
        message: message.into(),
    }
}

fn model_err(offset: usize, e: ModelError) -> EntryError {
    err(offset, e.to_string())
}

/// `type:id#relation`: an object and one of its relations or permissions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRelation {
    pub object: ObjectRef,
    pub relation: String,
}

impl fmt::Display for ObjectRelation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.object, self.relation)
    }
}

/// Parses `type:id#relation` (no wildcard id, no ellipsis).
pub fn parse_object_relation(text: &str) -> Result<ObjectRelation, EntryError> {
    let trimmed = text.trim();
    let lead = text.len() - text.trim_start().len();
    if !trimmed.contains('#') {
        return Err(err(
            lead,
            format!("expected `type:id#relation`, found `{trimmed}` (no `#`)"),
        ));
    }
    let s = parse_subject(trimmed).map_err(|e| model_err(lead, e))?;
    match s.relation {
        Some(relation) if !s.object.object_id.is_empty() => Ok(ObjectRelation {
            object: s.object,
            relation,
        }),
        _ => Err(err(
            lead,
            format!("expected `type:id#relation`, found `{trimmed}` (`...` is not a relation)"),
        )),
    }
}

/// One assertion: check `permission` of `resource` for `subject`, with `context`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    pub resource: ObjectRef,
    pub permission: String,
    pub subject: SubjectRef,
    pub context: Context,
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.resource, self.permission, self.subject)?;
        if !self.context.is_empty() {
            write!(
                f,
                " with {}",
                serde_json::Value::Object(self.context.clone())
            )?;
        }
        Ok(())
    }
}

/// Parses `resource#permission@subject`, optionally followed by ` with {json object}`.
pub fn parse_assertion(text: &str) -> Result<Assertion, EntryError> {
    let lead = text.len() - text.trim_start().len();
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(err(
            0,
            "empty assertion; expected `resource:id#permission@subject:id`",
        ));
    }
    // Object ids, relations and types never contain whitespace, so the relationship ends at
    // the first whitespace; whatever follows must be `with {...}`.
    let rel_end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    let rel_text = &trimmed[..rel_end];
    let rest = &trimmed[rel_end..];

    let r = parse_relationship(rel_text).map_err(|e| model_err(lead, e))?;
    if r.caveat.is_some() || r.expiration.is_some() {
        return Err(err(
            lead + rel_text.find('[').unwrap_or(0),
            "an assertion cannot name a caveat or an expiration; give caveat context with ` with {...}`",
        ));
    }
    if r.subject.is_wildcard() {
        return Err(err(
            lead + rel_text.find('@').map_or(0, |i| i + 1),
            format!(
                "cannot assert a permission for the wildcard subject `{}`; name a concrete subject",
                r.subject
            ),
        ));
    }

    let mut context = Context::new();
    let after_rel = rest.trim_start();
    if !after_rel.is_empty() {
        let with_at = lead + rel_end + (rest.len() - after_rel.len());
        let Some(json_part) = after_rel
            .strip_prefix("with")
            .filter(|j| j.starts_with(|c: char| c.is_whitespace() || c == '{'))
        else {
            return Err(err(
                with_at,
                format!(
                    "unexpected `{after_rel}` after the relationship; expected ` with {{json context}}`"
                ),
            ));
        };
        let json_text = json_part.trim();
        let json_at = with_at + 4 + (json_part.len() - json_part.trim_start().len());
        match serde_json::from_str::<serde_json::Value>(json_text) {
            Ok(serde_json::Value::Object(m)) => context = m,
            Ok(other) => {
                return Err(err(
                    json_at,
                    format!("the context after `with` must be a JSON object, found `{other}`"),
                ));
            }
            Err(e) => {
                return Err(err(
                    json_at,
                    format!("invalid JSON context after `with`: {e}"),
                ));
            }
        }
    }

    Ok(Assertion {
        resource: r.resource,
        permission: r.relation,
        subject: r.subject,
        context,
    })
}

/// One expected subject of a `validation:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedSubject {
    /// The subject: an object, a userset or a wildcard.
    pub subject: SubjectRef,
    /// `[user:x[caveat]]` or `[user:x[...]]`: the subject has the permission only conditionally.
    /// The reference compares only whether a subject is caveated, not by which caveat, so the
    /// name is kept for messages only.
    pub caveat: Option<String>,
    /// For a wildcard, the subjects excluded from it (`[user:* - {user:bob}]`), each with
    /// whether the exclusion is conditional (`[user:* - {user:bob[...]}]`).
    pub excluded: BTreeMap<SubjectRef, bool>,
    /// The `is <...>/<...>` part: where the subject was found directly. `None` when omitted,
    /// in which case the paths are not compared.
    pub paths: Option<BTreeSet<ObjectRelation>>,
}

impl fmt::Display for ExpectedSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_subject(
            &self.subject,
            self.caveat.as_deref(),
            &self.excluded,
        ))?;
        if let Some(paths) = &self.paths {
            f.write_str(" is ")?;
            f.write_str(&format_paths(paths))?;
        }
        Ok(())
    }
}

/// Formats `[subject[caveat] - {excluded, excluded[...], ...}]` (conditionally excluded
/// subjects carry the `[...]` marker).
pub fn format_subject(
    subject: &SubjectRef,
    caveat: Option<&str>,
    excluded: &BTreeMap<SubjectRef, bool>,
) -> String {
    let mut out = format!("[{subject}");
    if let Some(c) = caveat {
        out.push('[');
        out.push_str(c);
        out.push(']');
    }
    if !excluded.is_empty() {
        out.push_str(" - {");
        let list: Vec<String> = excluded
            .iter()
            .map(|(s, conditional)| {
                if *conditional {
                    format!("{s}[...]")
                } else {
                    s.to_string()
                }
            })
            .collect();
        out.push_str(&list.join(", "));
        out.push('}');
    }
    out.push(']');
    out
}

/// Formats `<a#r>/<b#s>`.
pub fn format_paths(paths: &BTreeSet<ObjectRelation>) -> String {
    let list: Vec<String> = paths.iter().map(|p| format!("<{p}>")).collect();
    list.join("/")
}

/// Finds the `]` matching the `[` that `s` starts after, skipping nested `[...]` and `{...}`.
fn matching_close(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '[' | '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ']' if depth == 0 => return Some(i),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Parses `type:id`, `type:id#rel` or `type:*`, optionally followed by `[caveat]`, starting at
/// byte `at` of the entry. Returns the subject and the caveat marker.
fn parse_marked_subject(text: &str, at: usize) -> Result<(SubjectRef, Option<String>), EntryError> {
    let lead = text.len() - text.trim_start().len();
    let t = text.trim();
    let at = at + lead;
    if t.is_empty() {
        return Err(err(at, "expected a subject such as `user:alice`"));
    }
    let (subject_text, caveat) = match t.strip_suffix(']') {
        Some(body) => {
            let open = body
                .rfind('[')
                .ok_or_else(|| err(at + t.len() - 1, format!("unmatched `]` in `{t}`")))?;
            let name = body[open + 1..].trim();
            if name != "..." {
                crate::model::validate_caveat_name(name)
                    .map_err(|e| model_err(at + open + 1, e))?;
            }
            (&body[..open], Some(name.to_string()))
        }
        None => (t, None),
    };
    let subject = parse_subject(subject_text.trim_end()).map_err(|e| model_err(at, e))?;
    Ok((subject, caveat))
}

/// Parses one expected subject: `[subject] is <type:id#relation>/<type:id#relation>...`.
///
/// The subject may be `user:x`, `group:eng#member`, `user:*`, `user:* - {user:a, user:b}`, and
/// any of them may carry a caveat marker: `user:x[caveat_name]` or `user:x[...]`.
pub fn parse_expected_subject(text: &str) -> Result<ExpectedSubject, EntryError> {
    let lead = text.len() - text.trim_start().len();
    let t = text.trim();
    let Some(after_open) = t.strip_prefix('[') else {
        return Err(err(
            lead,
            format!("expected `[subject] is <object#relation>`, found `{t}`"),
        ));
    };
    let close =
        matching_close(after_open).ok_or_else(|| err(lead, "missing `]` closing the subject"))?;
    let inner = &after_open[..close];
    let inner_at = lead + 1;

    // `subject - {a, b}`: ids may contain `-`, so the exclusion starts at the `{`.
    let (base_text, excluded_text) = match inner.find('{') {
        Some(brace) => {
            let head = inner[..brace].trim_end();
            let Some(base) = head.strip_suffix('-') else {
                return Err(err(
                    inner_at + brace,
                    "expected `subject - {excluded, ...}` around `{`",
                ));
            };
            let body = inner[brace + 1..].trim_end();
            let Some(list) = body.strip_suffix('}') else {
                return Err(err(
                    inner_at + brace,
                    "missing `}` closing the excluded subjects",
                ));
            };
            (base, Some((list, inner_at + brace + 1)))
        }
        None => (inner, None),
    };
    let (subject, caveat) = parse_marked_subject(base_text, inner_at)?;

    let mut excluded = BTreeMap::new();
    if let Some((list, list_at)) = excluded_text {
        if !subject.is_wildcard() {
            return Err(err(
                inner_at,
                format!("only a wildcard subject can have exclusions, not `{subject}`"),
            ));
        }
        let mut offset = list_at;
        for part in list.split(',') {
            let (ex, caveat) = parse_marked_subject(part, offset)?;
            if ex.is_wildcard() {
                return Err(err(offset, "a wildcard cannot be excluded from a wildcard"));
            }
            if ex.object.object_type != subject.object.object_type {
                return Err(err(
                    offset,
                    format!(
                        "excluded subject `{ex}` is not of the wildcard's type `{}`",
                        subject.object.object_type
                    ),
                ));
            }
            if excluded.insert(ex.clone(), caveat.is_some()).is_some() {
                return Err(err(offset, format!("`{ex}` is excluded twice")));
            }
            offset += part.len() + 1;
        }
    }

    // The optional `is <...>/<...>` part.
    let rest_at = lead + 1 + close + 1;
    let rest = &after_open[close + 1..];
    let paths = if rest.trim().is_empty() {
        None
    } else {
        let r = rest.trim_start();
        let mut at = rest_at + (rest.len() - r.len());
        let Some(list) = r
            .strip_prefix("is")
            .filter(|l| l.starts_with(char::is_whitespace))
        else {
            return Err(err(
                at,
                format!("expected `is <object#relation>` after the subject, found `{r}`"),
            ));
        };
        at += 2;
        let mut paths = BTreeSet::new();
        let mut remaining = list;
        loop {
            let trimmed = remaining.trim_start();
            at += remaining.len() - trimmed.len();
            let Some(body) = trimmed.strip_prefix('<') else {
                return Err(err(
                    at,
                    format!("expected `<object#relation>`, found `{trimmed}`"),
                ));
            };
            let end = body
                .find('>')
                .ok_or_else(|| err(at, "missing `>` closing `<object#relation>`"))?;
            let onr = parse_object_relation(&body[..end])
                .map_err(|e| err(at + 1 + e.offset, e.message))?;
            if !paths.insert(onr.clone()) {
                return Err(err(at, format!("`<{onr}>` is listed twice")));
            }
            at += 1 + end + 1;
            let after = &body[end + 1..];
            let after_trim = after.trim_start();
            at += after.len() - after_trim.len();
            if after_trim.is_empty() {
                break;
            }
            let Some(next) = after_trim.strip_prefix('/') else {
                return Err(err(
                    at,
                    format!("expected `/` between relations, found `{after_trim}`"),
                ));
            };
            at += 1;
            remaining = next;
        }
        Some(paths)
    };

    Ok(ExpectedSubject {
        subject,
        caveat,
        excluded,
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onr(s: &str) -> ObjectRelation {
        parse_object_relation(s).unwrap()
    }

    #[test]
    fn assertion_plain() {
        let a = parse_assertion("document:1#view@user:alice").unwrap();
        assert_eq!(a.resource, ObjectRef::new("document", "1"));
        assert_eq!(a.permission, "view");
        assert_eq!(a.subject, SubjectRef::new("user", "alice", None));
        assert!(a.context.is_empty());
        let a = parse_assertion("  document:1#view@group:eng#member  ").unwrap();
        assert_eq!(a.subject, SubjectRef::new("group", "eng", Some("member")));
    }

    #[test]
    fn assertion_with_context() {
        let a = parse_assertion(r#"document:1#view@user:a with {"ip": "10.0.0.1", "n": [1, 2]}"#)
            .unwrap();
        assert_eq!(a.context["ip"], serde_json::json!("10.0.0.1"));
        assert_eq!(a.context["n"], serde_json::json!([1, 2]));
        let a = parse_assertion(r#"document:1#view@user:a with{"x":true}"#).unwrap();
        assert_eq!(a.context["x"], serde_json::json!(true));
        assert_eq!(a.to_string(), r#"document:1#view@user:a with {"x":true}"#);
    }

    #[test]
    fn assertion_errors() {
        let cases = [
            ("", 0, "empty assertion"),
            ("document:1#view", 0, "`@subject`"),
            ("document:1#view@user:*", 16, "wildcard subject"),
            ("document:1#view@user:a[cav]", 22, "cannot name a caveat"),
            ("document:1#view@user:a junk", 23, "unexpected `junk`"),
            (
                "document:1#view@user:a with [1]",
                28,
                "must be a JSON object",
            ),
            ("document:1#view@user:a with {oops}", 28, "invalid JSON"),
            ("document:1#view@user:a withx {}", 23, "unexpected"),
            ("Document:1#view@user:a", 0, "object type"),
        ];
        for (text, offset, needle) in cases {
            let e = parse_assertion(text).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {}", e.message);
            assert_eq!(e.offset, offset, "{text}: {}", e.message);
        }
    }

    #[test]
    fn object_relation() {
        let o = onr(" document:a/b#viewer ");
        assert_eq!(o.object, ObjectRef::new("document", "a/b"));
        assert_eq!(o.relation, "viewer");
        assert_eq!(o.to_string(), "document:a/b#viewer");
        assert!(
            parse_object_relation("document:1")
                .unwrap_err()
                .message
                .contains("no `#`")
        );
        assert!(parse_object_relation("document:1#...").is_err());
        assert!(parse_object_relation("document:*#view").is_err());
    }

    #[test]
    fn expected_simple_subjects() {
        let e = parse_expected_subject("[user:alice] is <document:1#viewer>").unwrap();
        assert_eq!(e.subject, SubjectRef::new("user", "alice", None));
        assert_eq!(e.caveat, None);
        assert!(e.excluded.is_empty());
        assert_eq!(e.paths, Some([onr("document:1#viewer")].into()));

        let e =
            parse_expected_subject("[group:eng#member] is <document:1#viewer>/<folder:a/b#editor>")
                .unwrap();
        assert_eq!(e.subject, SubjectRef::new("group", "eng", Some("member")));
        assert_eq!(
            e.paths,
            Some([onr("document:1#viewer"), onr("folder:a/b#editor")].into())
        );

        let e = parse_expected_subject("[user:x-y_z]").unwrap();
        assert_eq!(e.subject, SubjectRef::new("user", "x-y_z", None));
        assert_eq!(e.paths, None);
    }

    #[test]
    fn expected_caveated_and_wildcards() {
        let e = parse_expected_subject("[user:x[only_on_vpn]] is <document:1#viewer>").unwrap();
        assert_eq!(e.caveat.as_deref(), Some("only_on_vpn"));
        let e = parse_expected_subject("[user:x[...]] is <document:1#viewer>").unwrap();
        assert_eq!(e.caveat.as_deref(), Some("..."));

        let e = parse_expected_subject("[user:*] is <document:1#viewer>").unwrap();
        assert!(e.subject.is_wildcard());
        let e =
            parse_expected_subject("[user:* - {user:bob, user:carol-1}] is <document:1#viewer>")
                .unwrap();
        assert!(e.subject.is_wildcard());
        assert_eq!(
            e.excluded,
            [
                (SubjectRef::new("user", "bob", None), false),
                (SubjectRef::new("user", "carol-1", None), false)
            ]
            .into()
        );
        let e = parse_expected_subject("[user:*[cav] - {user:bob[...], user:eve}]").unwrap();
        assert_eq!(e.caveat.as_deref(), Some("cav"));
        assert_eq!(
            e.excluded,
            [
                (SubjectRef::new("user", "bob", None), true),
                (SubjectRef::new("user", "eve", None), false)
            ]
            .into()
        );
    }

    #[test]
    fn expected_round_trips_through_display() {
        for text in [
            "[user:alice] is <document:1#viewer>",
            "[user:* - {user:bob, user:carol}] is <document:1#viewer>/<folder:x#owner>",
            "[user:* - {user:bob[...], user:carol}] is <document:1#viewer>",
            "[user:x[cav]] is <document:1#viewer>",
            "[group:eng#member]",
        ] {
            assert_eq!(parse_expected_subject(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn expected_errors() {
        let cases = [
            (
                "user:alice is <document:1#viewer>",
                0,
                "expected `[subject]",
            ),
            ("[user:alice is <document:1#viewer>", 0, "missing `]`"),
            ("[user:alice] <document:1#viewer>", 13, "expected `is"),
            (
                "[user:alice] is document:1#viewer",
                16,
                "expected `<object#relation>`",
            ),
            ("[user:alice] is <document:1#viewer", 16, "missing `>`"),
            ("[user:alice] is <document:1>", 17, "no `#`"),
            (
                "[user:alice] is <document:1#viewer> <doc:2#x>",
                36,
                "expected `/`",
            ),
            (
                "[user:alice] is <document:1#viewer>/<document:1#viewer>",
                36,
                "listed twice",
            ),
            ("[user:bob - {user:a}]", 1, "only a wildcard"),
            ("[user:* - {group:a}]", 11, "wildcard's type"),
            ("[user:* - {user:a, user:a}]", 18, "excluded twice"),
            ("[user:* {user:a}]", 8, "expected `subject - {"),
            ("[user:* - {user:a]", 0, "missing `]`"),
            ("[User:a]", 1, "object type"),
            ("[user:a[bad name]]", 8, "caveat"),
            ("[]", 1, "expected a subject"),
        ];
        for (text, offset, needle) in cases {
            let e = parse_expected_subject(text).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {}", e.message);
            assert_eq!(e.offset, offset, "{text}: {}", e.message);
        }
    }
}
