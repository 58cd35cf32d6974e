//! The canonical text of a compiled schema (what `ReadSchema` returns and `schema format`
//! prints).
//!
//! Layout: `use expiration` first (when enabled), then caveats, then definitions, each in
//! source order and separated by one blank line; 4-space indentation; doc comments as
//! `/** ... */`. Expressions are parenthesised wherever two different operators meet — the
//! minimum that keeps the reference's surprising precedence from ever mattering — so the
//! canonical text never triggers the mixed-operator warning, and compiling it again yields
//! an identical [`Schema`].

use std::fmt::Write;

use super::compiled::{ArrowKind, Definition, Relation, RelationKind, Rewrite, Schema};

const INDENT: &str = "    ";

/// Caveat signatures longer than this are written one parameter per line.
const MAX_LINE: usize = 100;

/// Renders `schema` as canonical schema text. Formatting is idempotent:
/// `format_schema(compile(format_schema(s)))` is `format_schema(s)`.
pub fn format_schema(schema: &Schema) -> String {
    let mut blocks: Vec<String> = Vec::new();
    if schema.uses_expiration {
        blocks.push("use expiration\n".to_string());
    }
    for (name, caveat) in &schema.caveats {
        let mut out = String::new();
        if let Some(doc) = schema.caveat_docs.get(name) {
            write_doc(&mut out, doc, "");
        }
        let params: Vec<String> = caveat
            .parameters()
            .iter()
            .map(|(p, t)| format!("{p} {t}"))
            .collect();
        let one_line = format!("caveat {name}({}) {{", params.join(", "));
        if one_line.len() <= MAX_LINE {
            let _ = writeln!(out, "{one_line}");
        } else {
            let _ = writeln!(out, "caveat {name}(");
            for p in &params {
                let _ = writeln!(out, "{INDENT}{p},");
            }
            out.push_str(") {\n");
        }
        // Continuation lines are kept verbatim so the expression text survives a round trip.
        let _ = writeln!(out, "{INDENT}{}", caveat.expression_text());
        out.push_str("}\n");
        blocks.push(out);
    }
    for def in schema.definitions.values() {
        blocks.push(format_definition(def));
    }
    blocks.join("\n")
}

fn format_definition(def: &Definition) -> String {
    let mut out = String::new();
    if let Some(doc) = &def.doc {
        write_doc(&mut out, doc, "");
    }
    if def.relations.is_empty() {
        let _ = writeln!(out, "definition {} {{}}", def.name);
        return out;
    }
    let _ = writeln!(out, "definition {} {{", def.name);
    for (i, rel) in def.relations.values().enumerate() {
        if let Some(doc) = &rel.doc {
            // A documented member is set apart from the one above it.
            if i > 0 {
                out.push('\n');
            }
            write_doc(&mut out, doc, INDENT);
        }
        let _ = writeln!(out, "{INDENT}{}", format_relation(rel));
    }
    out.push_str("}\n");
    out
}

fn format_relation(rel: &Relation) -> String {
    match &rel.kind {
        RelationKind::Relation(allowed) => {
            let types = allowed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" | ");
            format!("relation {}: {types}", rel.name)
        }
        RelationKind::Permission(rewrite) => {
            let mut expr = String::new();
            write_rewrite(&mut expr, rewrite);
            format!("permission {} = {expr}", rel.name)
        }
    }
}

/// A doc comment's text as comment source, with its delimiters (what schema reflection
/// returns): `/** text */`, a `/** ... */` block, or `//` lines; no trailing newline.
pub fn doc_comment_source(doc: &str) -> String {
    let mut out = String::new();
    write_doc(&mut out, doc, "");
    out.truncate(out.trim_end().len());
    out
}

/// Writes a doc comment: `/** text */` for one plain line, a `/** ... */` block otherwise,
/// and `//` lines when the text itself contains `*/`.
fn write_doc(out: &mut String, doc: &str, indent: &str) {
    let lines: Vec<&str> = doc.split('\n').collect();
    if doc.contains("*/") {
        for l in lines {
            if l.is_empty() {
                let _ = writeln!(out, "{indent}//");
            } else {
                let _ = writeln!(out, "{indent}// {l}");
            }
        }
        return;
    }
    let single_plain =
        lines.len() == 1 && doc.trim() == doc && !doc.starts_with('*') && !doc.is_empty();
    if single_plain {
        let _ = writeln!(out, "{indent}/** {doc} */");
        return;
    }
    let _ = writeln!(out, "{indent}/**");
    for l in lines {
        if l.is_empty() {
            let _ = writeln!(out, "{indent} *");
        } else {
            let _ = writeln!(out, "{indent} * {l}");
        }
    }
    let _ = writeln!(out, "{indent} */");
}

/// Binding strength of a rewrite as an operand, for parenthesisation.
#[derive(PartialEq, Eq)]
enum Shape {
    Atom,
    Union,
    Intersection,
    Exclusion,
}

fn shape(r: &Rewrite) -> Shape {
    match r {
        Rewrite::Union(v) if v.len() >= 2 => Shape::Union,
        Rewrite::Intersection(v) if v.len() >= 2 => Shape::Intersection,
        Rewrite::Union(v) | Rewrite::Intersection(v) => v.first().map_or(Shape::Atom, shape),
        Rewrite::Exclusion(..) => Shape::Exclusion,
        Rewrite::Nil | Rewrite::Computed(_) | Rewrite::Arrow { .. } => Shape::Atom,
    }
}

fn write_operand(out: &mut String, r: &Rewrite, parent: Shape, is_left_of_exclusion: bool) {
    let s = shape(r);
    let bare = s == Shape::Atom
        || (s == parent && parent != Shape::Exclusion)
        || (s == Shape::Exclusion && parent == Shape::Exclusion && is_left_of_exclusion);
    if bare {
        write_rewrite(out, r);
    } else {
        out.push('(');
        write_rewrite(out, r);
        out.push(')');
    }
}

fn write_rewrite(out: &mut String, r: &Rewrite) {
    match r {
        Rewrite::Nil => out.push_str("nil"),
        Rewrite::Computed(name) => out.push_str(name),
        Rewrite::Arrow {
            tupleset,
            computed,
            kind: ArrowKind::Any,
        } => {
            let _ = write!(out, "{tupleset}->{computed}");
        }
        Rewrite::Arrow {
            tupleset,
            computed,
            kind: ArrowKind::All,
        } => {
            let _ = write!(out, "{tupleset}.all({computed})");
        }
        Rewrite::Union(children) | Rewrite::Intersection(children) => {
            let (op, parent) = if matches!(r, Rewrite::Union(_)) {
                (" + ", Shape::Union)
            } else {
                (" & ", Shape::Intersection)
            };
            match children.as_slice() {
                [] => out.push_str("nil"),
                [only] => write_rewrite(out, only),
                _ => {
                    for (i, c) in children.iter().enumerate() {
                        if i > 0 {
                            out.push_str(op);
                        }
                        let p = if parent == Shape::Union {
                            Shape::Union
                        } else {
                            Shape::Intersection
                        };
                        write_operand(out, c, p, false);
                    }
                }
            }
        }
        Rewrite::Exclusion(left, right) => {
            write_operand(out, left, Shape::Exclusion, true);
            out.push_str(" - ");
            write_operand(out, right, Shape::Exclusion, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::compile;

    fn roundtrip(src: &str) -> String {
        let first = compile("a.zed", src).unwrap();
        let text = format_schema(&first.schema);
        let second = compile("b.zed", &text).unwrap_or_else(|d| panic!("{d}\n{text}"));
        assert!(second.warnings.items.is_empty(), "{}", second.warnings);
        assert_eq!(*first.schema, *second.schema, "{text}");
        assert_eq!(format_schema(&second.schema), text);
        text
    }

    #[test]
    fn expressions_are_parenthesised_where_operators_meet() {
        let text = roundtrip(
            "definition doc {\n relation aaa: doc\n relation bbb: doc\n relation ccc: doc\n permission pp1 = aaa - bbb & ccc + aaa\n permission pp2 = (aaa - bbb) - ccc\n permission pp3 = aaa - (bbb - ccc)\n permission pp4 = aaa + bbb + (ccc & aaa)\n permission pp5 = ((aaa))\n permission pp6 = aaa.all(pp1) & aaa->pp2 - nil\n}",
        );
        assert_eq!(
            text,
            "definition doc {\n    relation aaa: doc\n    relation bbb: doc\n    relation ccc: doc\n    permission pp1 = aaa - (bbb & (ccc + aaa))\n    permission pp2 = aaa - bbb - ccc\n    permission pp3 = aaa - (bbb - ccc)\n    permission pp4 = aaa + bbb + (ccc & aaa)\n    permission pp5 = aaa\n    permission pp6 = (aaa.all(pp1) & aaa->pp2) - nil\n}\n"
        );
    }

    #[test]
    fn docs_survive_in_canonical_form() {
        let text = roundtrip(
            "// Users.\ndefinition user {}\n\n/**\n * Documents.\n *\n *   Indented.\n */\ndefinition doc {\n  // first line\n  // second */ line\n  relation owner: user\n  /** * starred */\n  permission view = owner\n}",
        );
        assert_eq!(
            text,
            "/** Users. */\ndefinition user {}\n\n/**\n * Documents.\n *\n *   Indented.\n */\ndefinition doc {\n    // first line\n    // second */ line\n    relation owner: user\n\n    /**\n     * * starred\n     */\n    permission view = owner\n}\n"
        );
    }

    #[test]
    fn caveats_come_first_with_their_text() {
        let text = roundtrip(
            "use expiration\ndefinition user {}\n/** On weekdays. */\ncaveat weekday(day string, hours list<int>) {\n  day != 'sat' &&\n    hours.size() > 0\n}\ndefinition doc { relation vip: user with weekday and expiration | user:* }",
        );
        assert_eq!(
            text,
            "use expiration\n\n/** On weekdays. */\ncaveat weekday(day string, hours list<int>) {\n    day != 'sat' &&\n    hours.size() > 0\n}\n\ndefinition user {}\n\ndefinition doc {\n    relation vip: user with weekday and expiration | user:*\n}\n"
        );
    }

    #[test]
    fn empty_schema_formats_to_nothing() {
        assert_eq!(roundtrip("// nothing here\n"), "");
    }
}
