//! `tessera expand RESOURCE PERMISSION`: the permission's userset tree, one level deep as the
//! API returns it, as an indented text tree or as Graphviz DOT.

use std::collections::HashMap;
use std::fmt::Write as _;

use clap::{Args, ValueEnum};

use crate::api::proto::authzed::api::v1 as pb;
use pb::algebraic_subject_set::Operation;
use pb::permission_relationship_tree::TreeType;

use super::check::parse_resource;
use super::client::{ClientArgs, Connection, ConsistencyArgs, block_on};
use super::error::{CliError, EXIT_OK};

/// Output formats of `expand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ExpandFormat {
    /// An indented tree.
    #[default]
    Text,
    /// A Graphviz digraph (`tessera expand … --format dot | dot -Tsvg > tree.svg`).
    Dot,
}

#[derive(Debug, Clone, Args)]
pub struct ExpandArgs {
    /// The resource, `type:id`.
    #[arg(value_name = "RESOURCE")]
    pub resource: String,
    /// The permission or relation to expand.
    #[arg(value_name = "PERMISSION")]
    pub permission: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ExpandFormat,
    #[command(flatten)]
    pub consistency: ConsistencyArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `tessera expand`; returns the exit code.
pub fn run(args: &ExpandArgs) -> Result<u8, CliError> {
    let resource = parse_resource(&args.resource)?;
    let request = pb::ExpandPermissionTreeRequest {
        consistency: Some(args.consistency.to_proto()?),
        resource: Some(super::wire::object_to_proto(&resource)),
        permission: args.permission.clone(),
    };
    block_on(async {
        let mut conn = Connection::open(&args.client).await?;
        let response = conn
            .permissions
            .expand_permission_tree(request)
            .await
            .map_err(|s| conn.error(s))?
            .into_inner();
        let tree = response
            .tree_root
            .ok_or_else(|| CliError::Failed("the server returned no tree".into()))?;
        let rendered = match args.format {
            ExpandFormat::Text => render_text(&tree),
            ExpandFormat::Dot => render_dot(&tree),
        };
        print!("{rendered}");
        let at = response.expanded_at.map(|z| z.token).unwrap_or_default();
        eprintln!("expanded at zookie {at}");
        Ok(EXIT_OK)
    })
}

fn operation_name(op: i32) -> &'static str {
    match Operation::try_from(op) {
        Ok(Operation::Union) => "union",
        Ok(Operation::Intersection) => "intersection",
        Ok(Operation::Exclusion) => "exclusion",
        Ok(Operation::Unspecified) | Err(_) => "unknown operation",
    }
}

fn subject_text(s: &pb::SubjectReference) -> String {
    let object = s
        .object
        .as_ref()
        .map(|o| format!("{}:{}", o.object_type, o.object_id))
        .unwrap_or_else(|| "?".into());
    if s.optional_relation.is_empty() || s.optional_relation == "..." {
        object
    } else {
        format!("{object}#{}", s.optional_relation)
    }
}

/// `object#relation` of a node, when the node names one.
fn node_label(tree: &pb::PermissionRelationshipTree) -> Option<String> {
    let o = tree.expanded_object.as_ref()?;
    Some(if tree.expanded_relation.is_empty() {
        format!("{}:{}", o.object_type, o.object_id)
    } else {
        format!(
            "{}:{}#{}",
            o.object_type, o.object_id, tree.expanded_relation
        )
    })
}

/// Renders the tree with box-drawing branches; the subtracted branches of an exclusion are
/// marked `minus`:
///
/// ```text
/// document:readme#view (union)
/// ├── document:readme#viewer
/// │   ├── user:alice
/// │   └── group:eng#member
/// └── document:readme#owner
///     └── user:bob
/// ```
pub fn render_text(tree: &pb::PermissionRelationshipTree) -> String {
    let mut out = String::new();
    text_node(tree, "", "", &mut out);
    out
}

fn text_node(tree: &pb::PermissionRelationshipTree, first: &str, rest: &str, out: &mut String) {
    let label = node_label(tree);
    match &tree.tree_type {
        Some(TreeType::Intermediate(set)) => {
            let op = operation_name(set.operation);
            let head = match &label {
                Some(l) => format!("{l} ({op})"),
                None => op.to_string(),
            };
            let _ = writeln!(out, "{first}{head}");
            // Exclusion is positional: the first child minus every later one.
            let exclusion = matches!(Operation::try_from(set.operation), Ok(Operation::Exclusion));
            let n = set.children.len();
            for (i, child) in set.children.iter().enumerate() {
                let last = i + 1 == n;
                let (branch, cont) = if last {
                    ("└── ", "    ")
                } else {
                    ("├── ", "│   ")
                };
                let marker = if exclusion && i > 0 { "minus " } else { "" };
                text_node(
                    child,
                    &format!("{rest}{branch}{marker}"),
                    &format!("{rest}{cont}"),
                    out,
                );
            }
            if n == 0 {
                let _ = writeln!(out, "{rest}└── (nothing)");
            }
        }
        Some(TreeType::Leaf(leaf)) => {
            let head = label.unwrap_or_else(|| "direct subjects".into());
            let _ = writeln!(out, "{first}{head}");
            let n = leaf.subjects.len();
            for (i, s) in leaf.subjects.iter().enumerate() {
                let branch = if i + 1 == n {
                    "└── "
                } else {
                    "├── "
                };
                let _ = writeln!(out, "{rest}{branch}{}", subject_text(s));
            }
            if n == 0 {
                let _ = writeln!(out, "{rest}└── (no subjects)");
            }
        }
        None => {
            let head = label.unwrap_or_else(|| "(empty)".into());
            let _ = writeln!(out, "{first}{head}");
        }
    }
}

/// A DOT string literal.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Renders the tree as a Graphviz digraph: operation and relation nodes are boxes, subjects
/// are ellipses shared by every leaf that lists them, exclusion edges are labelled.
pub fn render_dot(tree: &pb::PermissionRelationshipTree) -> String {
    let mut dot = Dot {
        out: String::new(),
        next: 0,
        subjects: HashMap::new(),
    };
    dot.out
        .push_str("digraph expand {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    dot.node(tree);
    dot.out.push_str("}\n");
    dot.out
}

struct Dot {
    out: String,
    next: usize,
    subjects: HashMap<String, String>,
}

impl Dot {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("n{}", self.next)
    }

    fn subject(&mut self, text: String) -> String {
        if let Some(id) = self.subjects.get(&text) {
            return id.clone();
        }
        let id = self.id();
        let shape = if text.contains('#') {
            "ellipse, style=dashed"
        } else {
            "ellipse"
        };
        let _ = writeln!(self.out, "  {id} [label={}, shape={shape}];", quote(&text));
        self.subjects.insert(text, id.clone());
        id
    }

    fn node(&mut self, tree: &pb::PermissionRelationshipTree) -> String {
        let id = self.id();
        let label = node_label(tree);
        match &tree.tree_type {
            Some(TreeType::Intermediate(set)) => {
                let op = operation_name(set.operation);
                let text = match &label {
                    Some(l) => format!("{l}\n{op}"),
                    None => op.to_string(),
                };
                let _ = writeln!(
                    self.out,
                    "  {id} [label={}, shape=box, style=rounded];",
                    quote(&text)
                );
                let exclusion =
                    matches!(Operation::try_from(set.operation), Ok(Operation::Exclusion));
                for (i, child) in set.children.iter().enumerate() {
                    let child_id = self.node(child);
                    let attrs = match (exclusion, i) {
                        (true, 0) => " [label=\"base\"]",
                        (true, _) => " [label=\"minus\", style=dashed]",
                        _ => "",
                    };
                    let _ = writeln!(self.out, "  {id} -> {child_id}{attrs};");
                }
            }
            Some(TreeType::Leaf(leaf)) => {
                let text = label.unwrap_or_else(|| "direct subjects".into());
                let _ = writeln!(self.out, "  {id} [label={}, shape=box];", quote(&text));
                for s in &leaf.subjects {
                    let sid = self.subject(subject_text(s));
                    let _ = writeln!(self.out, "  {id} -> {sid};");
                }
            }
            None => {
                let text = label.unwrap_or_else(|| "(empty)".into());
                let _ = writeln!(self.out, "  {id} [label={}, shape=box];", quote(&text));
            }
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(t: &str, id: &str) -> Option<pb::ObjectReference> {
        Some(pb::ObjectReference {
            object_type: t.into(),
            object_id: id.into(),
        })
    }

    fn subject(t: &str, id: &str, rel: &str) -> pb::SubjectReference {
        pb::SubjectReference {
            object: obj(t, id),
            optional_relation: rel.into(),
        }
    }

    fn leaf(rel: &str, subjects: Vec<pb::SubjectReference>) -> pb::PermissionRelationshipTree {
        pb::PermissionRelationshipTree {
            tree_type: Some(TreeType::Leaf(pb::DirectSubjectSet { subjects })),
            expanded_object: obj("document", "readme"),
            expanded_relation: rel.into(),
        }
    }

    fn sample() -> pb::PermissionRelationshipTree {
        pb::PermissionRelationshipTree {
            tree_type: Some(TreeType::Intermediate(pb::AlgebraicSubjectSet {
                operation: Operation::Union as i32,
                children: vec![
                    leaf(
                        "viewer",
                        vec![
                            subject("user", "alice", ""),
                            subject("group", "eng", "member"),
                        ],
                    ),
                    leaf("owner", vec![subject("user", "alice", "...")]),
                ],
            })),
            expanded_object: obj("document", "readme"),
            expanded_relation: "view".into(),
        }
    }

    #[test]
    fn text_tree() {
        assert_eq!(
            render_text(&sample()),
            "document:readme#view (union)\n\
             ├── document:readme#viewer\n\
             │   ├── user:alice\n\
             │   └── group:eng#member\n\
             └── document:readme#owner\n    \
             └── user:alice\n"
        );
    }

    #[test]
    fn exclusion_marks_subtracted_branches() {
        let tree = pb::PermissionRelationshipTree {
            tree_type: Some(TreeType::Intermediate(pb::AlgebraicSubjectSet {
                operation: Operation::Exclusion as i32,
                children: vec![
                    leaf("viewer", vec![subject("user", "a", "")]),
                    leaf("banned", vec![]),
                ],
            })),
            expanded_object: obj("document", "readme"),
            expanded_relation: "view".into(),
        };
        assert_eq!(
            render_text(&tree),
            "document:readme#view (exclusion)\n\
             ├── document:readme#viewer\n\
             │   └── user:a\n\
             └── minus document:readme#banned\n    \
             └── (no subjects)\n"
        );
    }

    #[test]
    fn dot_graph_shares_subject_nodes() {
        let dot = render_dot(&sample());
        assert!(dot.starts_with("digraph expand {\n"));
        assert!(dot.ends_with("}\n"));
        assert!(
            dot.contains("n1 [label=\"document:readme#view\\nunion\", shape=box, style=rounded];")
        );
        // user:alice appears under two leaves but is one node.
        assert_eq!(dot.matches("[label=\"user:alice\"").count(), 1);
        assert_eq!(dot.matches("-> n3;").count(), 2, "{dot}");
        assert!(dot.contains("[label=\"group:eng#member\", shape=ellipse, style=dashed]"));
    }

    #[test]
    fn dot_labels_are_escaped() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
