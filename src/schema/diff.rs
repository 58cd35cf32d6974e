//! The differences between two compiled schemas, behind the DiffSchema RPC: definitions and
//! caveats added or removed, doc comment changes, relations and permissions added or removed,
//! subject types allowed or no longer allowed, permission and caveat expressions changed, and
//! caveat parameters added, removed or retyped.
//!
//! Elements that exist on both sides are reported as they are in the comparison (new)
//! schema; removed elements as they were in the existing one. Two expressions are the same
//! when they compile to the same rewrite tree (so parentheses that do not change the meaning
//! are not a change); caveat expressions are compared ignoring insignificant whitespace.
//! A member that changes from relation to permission (or back) is reported as removed and
//! added. The order is stable: definitions (existing order, then added ones in comparison
//! order), each followed by its member changes, then caveats likewise.

use std::collections::HashSet;

use super::compiled::{AllowedSubject, Definition, Relation, RelationKind, Schema};
use crate::caveat::{CaveatType, CompiledCaveat};

/// A relation or permission together with the definition declaring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRef<'a> {
    /// Name of the definition declaring the member.
    pub definition: &'a str,
    /// The relation or permission.
    pub member: &'a Relation,
}

/// A caveat with its doc comment (kept by the schema beside the compiled caveat).
#[derive(Debug, Clone, Copy)]
pub struct CaveatEntry<'a> {
    pub caveat: &'a CompiledCaveat,
    pub doc: Option<&'a str>,
}

/// One parameter of a caveat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterRef<'a> {
    /// The caveat declaring the parameter.
    pub caveat: &'a str,
    pub name: &'a str,
    pub ty: &'a CaveatType,
}

/// One difference between the existing schema and a comparison schema.
#[derive(Debug, Clone, Copy)]
pub enum SchemaDiff<'a> {
    DefinitionAdded(&'a Definition),
    DefinitionRemoved(&'a Definition),
    DefinitionDocCommentChanged(&'a Definition),
    RelationAdded(MemberRef<'a>),
    RelationRemoved(MemberRef<'a>),
    RelationDocCommentChanged(MemberRef<'a>),
    /// The relation (as in the comparison schema) now allows `subject_type`.
    RelationSubjectTypeAdded {
        relation: MemberRef<'a>,
        subject_type: &'a AllowedSubject,
    },
    /// The relation (as in the comparison schema) no longer allows `subject_type`.
    RelationSubjectTypeRemoved {
        relation: MemberRef<'a>,
        subject_type: &'a AllowedSubject,
    },
    PermissionAdded(MemberRef<'a>),
    PermissionRemoved(MemberRef<'a>),
    PermissionDocCommentChanged(MemberRef<'a>),
    PermissionExprChanged(MemberRef<'a>),
    CaveatAdded(CaveatEntry<'a>),
    CaveatRemoved(CaveatEntry<'a>),
    CaveatDocCommentChanged(CaveatEntry<'a>),
    CaveatExprChanged(CaveatEntry<'a>),
    CaveatParameterAdded(ParameterRef<'a>),
    CaveatParameterRemoved(ParameterRef<'a>),
    /// The parameter with its new type, and the type it had.
    CaveatParameterTypeChanged {
        parameter: ParameterRef<'a>,
        previous_type: &'a CaveatType,
    },
}

/// Every difference between `existing` and `comparison` (empty when they are equivalent).
pub fn diff_schemas<'a>(existing: &'a Schema, comparison: &'a Schema) -> Vec<SchemaDiff<'a>> {
    let mut out = Vec::new();
    for old in existing.definitions.values() {
        match comparison.definition(&old.name) {
            None => out.push(SchemaDiff::DefinitionRemoved(old)),
            Some(new) => diff_definition(old, new, &mut out),
        }
    }
    for new in comparison.definitions.values() {
        if existing.definition(&new.name).is_none() {
            out.push(SchemaDiff::DefinitionAdded(new));
        }
    }
    let entry = |schema: &'a Schema, caveat: &'a CompiledCaveat| CaveatEntry {
        caveat,
        doc: schema.caveat_docs.get(caveat.name()).map(String::as_str),
    };
    for old in existing.caveats.values() {
        let old = entry(existing, old);
        match comparison.caveat(old.caveat.name()) {
            None => out.push(SchemaDiff::CaveatRemoved(old)),
            Some(new) => diff_caveat(old, entry(comparison, new), &mut out),
        }
    }
    for new in comparison.caveats.values() {
        if existing.caveat(new.name()).is_none() {
            out.push(SchemaDiff::CaveatAdded(entry(comparison, new)));
        }
    }
    out
}

fn same_doc(a: Option<&str>, b: Option<&str>) -> bool {
    a.unwrap_or_default().trim() == b.unwrap_or_default().trim()
}

fn diff_definition<'a>(old: &'a Definition, new: &'a Definition, out: &mut Vec<SchemaDiff<'a>>) {
    if !same_doc(old.doc.as_deref(), new.doc.as_deref()) {
        out.push(SchemaDiff::DefinitionDocCommentChanged(new));
    }
    let member = |def: &'a Definition, member: &'a Relation| MemberRef {
        definition: &def.name,
        member,
    };
    for o in old.relations.values() {
        let o = member(old, o);
        match new.relations.get(&o.member.name) {
            Some(n) if n.is_permission() == o.member.is_permission() => {
                diff_member(o, member(new, n), out)
            }
            Some(n) => {
                out.push(removed(o));
                out.push(added(member(new, n)));
            }
            None => out.push(removed(o)),
        }
    }
    for n in new.relations.values() {
        if !old.relations.contains_key(&n.name) {
            out.push(added(member(new, n)));
        }
    }
}

fn added(m: MemberRef<'_>) -> SchemaDiff<'_> {
    if m.member.is_permission() {
        SchemaDiff::PermissionAdded(m)
    } else {
        SchemaDiff::RelationAdded(m)
    }
}

fn removed(m: MemberRef<'_>) -> SchemaDiff<'_> {
    if m.member.is_permission() {
        SchemaDiff::PermissionRemoved(m)
    } else {
        SchemaDiff::RelationRemoved(m)
    }
}

/// Differences between two members of the same name and kind.
fn diff_member<'a>(old: MemberRef<'a>, new: MemberRef<'a>, out: &mut Vec<SchemaDiff<'a>>) {
    if !same_doc(old.member.doc.as_deref(), new.member.doc.as_deref()) {
        out.push(if new.member.is_permission() {
            SchemaDiff::PermissionDocCommentChanged(new)
        } else {
            SchemaDiff::RelationDocCommentChanged(new)
        });
    }
    match (&old.member.kind, &new.member.kind) {
        (RelationKind::Relation(before), RelationKind::Relation(after)) => {
            // Sets, not list scans: a relation may allow many subject types.
            let before_set: HashSet<&AllowedSubject> = before.iter().collect();
            let after_set: HashSet<&AllowedSubject> = after.iter().collect();
            for t in before.iter().filter(|t| !after_set.contains(t)) {
                out.push(SchemaDiff::RelationSubjectTypeRemoved {
                    relation: new,
                    subject_type: t,
                });
            }
            for t in after.iter().filter(|t| !before_set.contains(t)) {
                out.push(SchemaDiff::RelationSubjectTypeAdded {
                    relation: new,
                    subject_type: t,
                });
            }
        }
        (RelationKind::Permission(before), RelationKind::Permission(after)) if before != after => {
            out.push(SchemaDiff::PermissionExprChanged(new));
        }
        // Equal expressions, or (never passed by callers) members of different kinds.
        _ => {}
    }
}

fn diff_caveat<'a>(old: CaveatEntry<'a>, new: CaveatEntry<'a>, out: &mut Vec<SchemaDiff<'a>>) {
    if !same_doc(old.doc, new.doc) {
        out.push(SchemaDiff::CaveatDocCommentChanged(new));
    }
    let param = |c: &'a CompiledCaveat, name: &'a str, ty: &'a CaveatType| ParameterRef {
        caveat: c.name(),
        name,
        ty,
    };
    let before = old.caveat.parameters();
    let after = new.caveat.parameters();
    for (name, ty) in before {
        match after.get(name) {
            None => out.push(SchemaDiff::CaveatParameterRemoved(param(
                old.caveat, name, ty,
            ))),
            Some(new_ty) if new_ty != ty => out.push(SchemaDiff::CaveatParameterTypeChanged {
                parameter: param(new.caveat, name, new_ty),
                previous_type: ty,
            }),
            Some(_) => {}
        }
    }
    for (name, ty) in after {
        if !before.contains_key(name) {
            out.push(SchemaDiff::CaveatParameterAdded(param(
                new.caveat, name, ty,
            )));
        }
    }
    if normalize_expression(old.caveat.expression_text())
        != normalize_expression(new.caveat.expression_text())
    {
        out.push(SchemaDiff::CaveatExprChanged(new));
    }
}

/// A caveat expression with insignificant whitespace removed: whitespace runs outside string
/// literals are dropped, except for one space between two word characters (`a in b`), so
/// that only reformatting never counts as a change.
fn normalize_expression(text: &str) -> String {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut pending_space = false;
    for c in text.chars() {
        if let Some(q) = quote {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && word(c) && out.chars().next_back().is_some_and(word) {
            out.push(' ');
        }
        pending_space = false;
        if c == '"' || c == '\'' {
            quote = Some(c);
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> std::sync::Arc<Schema> {
        crate::schema::compile("t", src).unwrap().schema
    }

    /// Each diff as a short text, for readable assertions.
    fn describe(d: &SchemaDiff<'_>) -> String {
        let m = |m: &MemberRef<'_>| format!("{}#{}", m.definition, m.member.name);
        match d {
            SchemaDiff::DefinitionAdded(d) => format!("definition added {}", d.name),
            SchemaDiff::DefinitionRemoved(d) => format!("definition removed {}", d.name),
            SchemaDiff::DefinitionDocCommentChanged(d) => {
                format!("definition doc {} = {:?}", d.name, d.doc)
            }
            SchemaDiff::RelationAdded(r) => format!("relation added {}", m(r)),
            SchemaDiff::RelationRemoved(r) => format!("relation removed {}", m(r)),
            SchemaDiff::RelationDocCommentChanged(r) => format!("relation doc {}", m(r)),
            SchemaDiff::RelationSubjectTypeAdded {
                relation,
                subject_type,
            } => format!("subject type added {} {subject_type}", m(relation)),
            SchemaDiff::RelationSubjectTypeRemoved {
                relation,
                subject_type,
            } => format!("subject type removed {} {subject_type}", m(relation)),
            SchemaDiff::PermissionAdded(p) => format!("permission added {}", m(p)),
            SchemaDiff::PermissionRemoved(p) => format!("permission removed {}", m(p)),
            SchemaDiff::PermissionDocCommentChanged(p) => format!("permission doc {}", m(p)),
            SchemaDiff::PermissionExprChanged(p) => format!("permission expr {}", m(p)),
            SchemaDiff::CaveatAdded(c) => format!("caveat added {}", c.caveat.name()),
            SchemaDiff::CaveatRemoved(c) => format!("caveat removed {}", c.caveat.name()),
            SchemaDiff::CaveatDocCommentChanged(c) => {
                format!("caveat doc {} = {:?}", c.caveat.name(), c.doc)
            }
            SchemaDiff::CaveatExprChanged(c) => format!("caveat expr {}", c.caveat.name()),
            SchemaDiff::CaveatParameterAdded(p) => {
                format!("parameter added {}.{} {}", p.caveat, p.name, p.ty)
            }
            SchemaDiff::CaveatParameterRemoved(p) => {
                format!("parameter removed {}.{} {}", p.caveat, p.name, p.ty)
            }
            SchemaDiff::CaveatParameterTypeChanged {
                parameter,
                previous_type,
            } => format!(
                "parameter type {}.{} {previous_type} -> {}",
                parameter.caveat, parameter.name, parameter.ty
            ),
        }
    }

    fn diff(a: &str, b: &str) -> Vec<String> {
        let (a, b) = (compile(a), compile(b));
        diff_schemas(&a, &b).iter().map(describe).collect()
    }

    const BASE: &str = r#"
        definition user {}
        /** teams */
        definition group {
            relation member: user | group#member
        }
        caveat on_day(day int, allowed list<int>) { day in allowed }
        definition document {
            relation viewer: user | group#member
            /** may edit */
            relation editor: user
            permission edit = editor
            permission view = viewer + edit
        }
    "#;

    #[test]
    fn identical_and_reformatted_schemas_have_no_diffs() {
        assert!(diff(BASE, BASE).is_empty());
        let reformatted = r#"
definition user {}
/** teams */
definition group { relation member: user | group#member }
caveat on_day(day int, allowed list<int>) {
    day   in
      allowed
}
definition document {
    relation viewer: user | group#member
    /** may edit */
    relation editor: user
    permission edit = (editor)
    permission view = (viewer + edit)
}
"#;
        assert_eq!(diff(BASE, reformatted), Vec::<String>::new());
    }

    #[test]
    fn definitions_and_members_added_removed_and_changed() {
        let next = r#"
            definition user {}
            /** groups of people */
            definition group {
                relation member: user
                relation owner: user
            }
            caveat on_day(day int, allowed list<int>) { day in allowed }
            definition folder {}
            definition document {
                relation viewer: user | group#member | user:*
                /** may change the text */
                relation editor: user
                relation edit: user
                permission view = viewer & edit
            }
        "#;
        assert_eq!(
            diff(BASE, next),
            [
                "definition doc group = Some(\"groups of people\")",
                "subject type removed group#member group#member",
                "relation added group#owner",
                "subject type added document#viewer user:*",
                "relation doc document#editor",
                "permission removed document#edit",
                "relation added document#edit",
                "permission expr document#view",
                "definition added folder",
            ]
        );
        assert_eq!(
            diff(next, BASE)[..2],
            [
                "definition doc group = Some(\"teams\")".to_string(),
                "subject type added group#member group#member".to_string(),
            ]
        );
        assert_eq!(
            diff(BASE, "definition user {}")
                .into_iter()
                .filter(|d| d.starts_with("definition"))
                .collect::<Vec<_>>(),
            ["definition removed group", "definition removed document"]
        );
    }

    #[test]
    fn caveat_changes() {
        let next = r#"
            definition user {}
            definition group {
                relation member: user | group#member
            }
            /** weekdays only */
            caveat on_day(day uint, tz string) { day < 6u }
            caveat fresh(age int) { age < 10 }
            definition document {
                relation viewer: user | group#member
                /** may edit */
                relation editor: user
                permission edit = editor
                permission view = viewer + edit
            }
        "#;
        assert_eq!(
            diff(BASE, next),
            [
                "definition doc group = None",
                "caveat doc on_day = Some(\"weekdays only\")",
                "parameter type on_day.day int -> uint",
                "parameter removed on_day.allowed list<int>",
                "parameter added on_day.tz string",
                "caveat expr on_day",
                "caveat added fresh",
            ]
        );
        let without = BASE.replace(
            "caveat on_day(day int, allowed list<int>) { day in allowed }",
            "",
        );
        assert!(diff(BASE, &without).contains(&"caveat removed on_day".to_string()));
    }

    #[test]
    fn caveat_and_expiration_on_subject_types_are_part_of_the_type() {
        let a = r#"
            use expiration
            definition user {}
            caveat c(x int) { x > 1 }
            definition doc { relation viewer: user | user with c }
        "#;
        let b = r#"
            use expiration
            definition user {}
            caveat c(x int) { x > 1 }
            definition doc { relation viewer: user with expiration | user with c }
        "#;
        assert_eq!(
            diff(a, b),
            [
                "subject type removed doc#viewer user",
                "subject type added doc#viewer user with expiration",
            ]
        );
    }

    #[test]
    fn expression_normalization_keeps_literals_and_word_boundaries() {
        assert_eq!(normalize_expression("a  in\n b"), "a in b");
        assert_eq!(
            normalize_expression("x < 6 && y == ' a  b '"),
            "x<6&&y==' a  b '"
        );
        assert_eq!(
            normalize_expression(r#"s == "q\" x  y""#),
            r#"s=="q\" x  y""#
        );
        assert_ne!(
            normalize_expression("a == 'x y'"),
            normalize_expression("a == 'x  y'")
        );
    }
}
