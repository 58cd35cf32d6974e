//! A small YAML document tree that remembers where every node came from.
//!
//! Validation reports must point at the exact line and column of a failing entry, and schema
//! diagnostics of an inline `schema: |` block must use the YAML file's own line numbers. Generic
//! YAML libraries either drop positions or drop the scalar style, so this module builds its own
//! tree from `saphyr-parser` events (which carry both) and keeps the raw text around to map block
//! scalar content back to file lines.

use std::fmt;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Span};

/// A 1-based line and column (in characters) in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub fn new(line: usize, column: usize) -> Self {
        Pos { line, column }
    }

    fn from_marker(m: &Marker) -> Self {
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML syntax error, or a document shape this module does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// One node of the document, with the position of its first character.
#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    span: Span,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Scalar {
        value: String,
        style: ScalarStyle,
    },
    Sequence(Vec<Node>),
    /// Key/value pairs in document order (duplicates are rejected while building).
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    /// The text of a scalar node; `None` for collections.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// True for an empty value: a plain `~`, `null`, `Null`, `NULL` or nothing at all.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, style: ScalarStyle::Plain }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short name of the node's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "an empty value",
            NodeKind::Scalar { .. } => "a string",
            NodeKind::Sequence(_) => "a list",
            NodeKind::Mapping(_) => "a mapping",
        }
    }
}

/// The raw text of a YAML file with a line index, used to map node contents back to positions.
pub struct Source<'a> {
    text: &'a str,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
}

/// One line of a block of text taken from a node, with the position of its first character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedLine<'a> {
    /// Position of the first character of `text` in the file.
    pub pos: Pos,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { text, line_starts }
    }

    /// The text of 1-based line `line`, without its line break.
    fn line(&self, line: usize) -> Option<&'a str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let end = self.line_starts.get(line).map_or(self.text.len(), |e| *e);
        let l = &self.text[start..end];
        let l = l.strip_suffix('\n').unwrap_or(l);
        Some(l.strip_suffix('\r').unwrap_or(l))
    }

    fn line_count(&self) -> usize {
        // A trailing newline does not start another line.
        if self.text.ends_with('\n') {
            self.line_starts.len() - 1
        } else {
            self.line_starts.len()
        }
    }

    /// Byte offset of a marker (line 1-based, column 0-based in characters).
    fn offset_of(&self, m: &Marker) -> usize {
        let Some(&start) = self.line_starts.get(m.line().saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .nth(m.col())
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// Parses the whole file into one document. An empty file or a file holding only
    /// comments gives `Ok(None)`; several documents are an error.
    pub fn parse(&self) -> Result<Option<Node>, YamlError> {
        let mut builder = Builder {
            events: Parser::new_from_str(self.text).peekable(),
            anchors: Vec::new(),
            depth: 0,
            weight: 0,
            budget: MIN_WEIGHT_BUDGET.max(self.text.len().saturating_mul(2)),
        };
        builder.document()
    }

    /// The position of byte `offset` of a scalar's value: exact for single-line plain scalars
    /// and for quoted ones without escapes, else the start of the node.
    pub fn pos_in_scalar(&self, node: &Node, offset: usize) -> Pos {
        let NodeKind::Scalar { value, style } = &node.kind else {
            return node.pos;
        };
        if offset > value.len() || !value.is_char_boundary(offset) || value[..offset].contains('\n')
        {
            return node.pos;
        }
        let shift = value[..offset].chars().count();
        let start = self.offset_of(&node.span.start);
        let raw = &self.text[start..];
        let exact = match style {
            ScalarStyle::Plain => raw.starts_with(value.as_str()),
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                raw.get(1..).is_some_and(|r| r.starts_with(value.as_str()))
            }
            _ => false,
        };
        match (exact, style) {
            (false, _) => node.pos,
            (true, ScalarStyle::Plain) => Pos::new(node.pos.line, node.pos.column + shift),
            (true, _) => Pos::new(node.pos.line, node.pos.column + 1 + shift),
        }
    }

    /// The lines of a scalar node as they appear in the file, each with its exact position.
    ///
    /// For block scalars (`|` and `>`) these are the raw lines of the block, minus the block's
    /// indentation: one relationship or schema line per file line, exactly what the author sees.
    /// (For a folded `>` block this deliberately ignores folding, which would otherwise glue
    /// lines together.) For other scalars the value is split on line breaks and positions are
    /// best effort: exact for single-line plain scalars.
    pub fn scalar_lines(&self, node: &'a Node) -> Vec<PlacedLine<'a>> {
        let NodeKind::Scalar { value, style } = &node.kind else {
            return Vec::new();
        };
        match style {
            ScalarStyle::Literal | ScalarStyle::Folded => self.block_lines(node),
            ScalarStyle::Plain => {
                if !value.contains('\n') {
                    return vec![PlacedLine {
                        pos: node.pos,
                        text: value,
                    }];
                }
                value
                    .split('\n')
                    .enumerate()
                    .map(|(i, text)| PlacedLine {
                        pos: Pos::new(node.pos.line + i, if i == 0 { node.pos.column } else { 1 }),
                        text,
                    })
                    .collect()
            }
            _ => value
                .split('\n')
                .enumerate()
                .map(|(i, text)| PlacedLine {
                    pos: Pos::new(
                        node.pos.line + i,
                        if i == 0 { node.pos.column + 1 } else { 1 },
                    ),
                    text,
                })
                .collect(),
        }
    }

    /// Raw lines of a block scalar, from the line after its header to the end of the block.
    fn block_lines(&self, node: &'a Node) -> Vec<PlacedLine<'a>> {
        // The node's start marker points at its first non-blank content line (leading blank
        // lines are skipped); the header (`|`, `>-`, `|2 # comment` ...) is on the line of the
        // last non-blank character before it.
        let start = self.offset_of(&node.span.start);
        let before = &self.text[..start];
        let header_end = before.trim_end().len();
        let header_line = self
            .line_starts
            .partition_point(|&s| s <= header_end)
            .max(1);
        let indent = node.span.start.col();
        let mut lines = Vec::new();
        let mut line_no = header_line + 1;
        while line_no <= self.line_count() {
            let Some(raw) = self.line(line_no) else { break };
            if raw.trim().is_empty() {
                lines.push(PlacedLine {
                    pos: Pos::new(line_no, 1),
                    text: "",
                });
                line_no += 1;
                continue;
            }
            let leading = raw.len() - raw.trim_start_matches(' ').len();
            if leading < indent {
                break; // a less indented, non-blank line ends the block
            }
            lines.push(PlacedLine {
                pos: Pos::new(line_no, indent + 1),
                text: &raw[indent..],
            });
            line_no += 1;
        }
        // Trailing blank lines belong to the file, not to the block.
        while lines.last().is_some_and(|l| l.text.is_empty()) {
            lines.pop();
        }
        lines
    }

    /// A copy of the file in which every line outside the block scalar `node` is blanked and
    /// the block's lines are kept verbatim: compiling it gives diagnostics whose line, column
    /// and quoted source line are those of the YAML file. Only meaningful for block scalars
    /// (see [`Source::scalar_lines`]); other scalars are placed at their starting line.
    pub fn embedded_text(&self, node: &'a Node) -> String {
        let is_block = matches!(
            &node.kind,
            NodeKind::Scalar {
                style: ScalarStyle::Literal | ScalarStyle::Folded,
                ..
            }
        );
        if !is_block {
            let value = node.as_str().unwrap_or_default();
            let mut out = "\n".repeat(node.pos.line.saturating_sub(1));
            out.push_str(&" ".repeat(node.pos.column.saturating_sub(1)));
            out.push_str(value);
            return out;
        }
        let lines = self.block_lines(node);
        let mut out = String::new();
        let mut next_line = 1;
        for l in &lines {
            while next_line < l.pos.line {
                out.push('\n');
                next_line += 1;
            }
            if let Some(raw) = self.line(l.pos.line) {
                out.push_str(raw);
            }
        }
        out.push('\n');
        out
    }
}

const MAX_NESTING: usize = 64;

/// What a node costs in the tree beyond its scalar text (an estimate of its size in memory).
const NODE_WEIGHT: usize = 64;
/// The least weight the tree of any file may reach; larger files may reach twice their size.
/// Aliases copy their anchored node, so without a bound a few lines ("billion laughs":
/// anchors of lists of aliases of anchors …) would expand to gigabytes.
const MIN_WEIGHT_BUDGET: usize = 64 << 20;

struct Builder<'a> {
    events: std::iter::Peekable<Parser<'a, saphyr_parser::StrInput<'a>>>,
    /// Anchored nodes by anchor id (ids start at 1), with their weight.
    anchors: Vec<(usize, Node, usize)>,
    depth: usize,
    /// Weight of the tree built so far (nodes and scalar text, aliases counted in full).
    weight: usize,
    /// The most `weight` may reach.
    budget: usize,
}

fn scan_error(e: &ScanError) -> YamlError {
    YamlError {
        pos: Pos::from_marker(e.marker()),
        message: format!("invalid YAML: {}", e.info()),
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.events.next() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(scan_error(&e)),
            None => Err(YamlError {
                pos: Pos::default(),
                message: "invalid YAML: unexpected end of input".into(),
            }),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, YamlError> {
        let mut root = None;
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart(_) => {
                    // An empty document yields a null scalar; treat it as nothing.
                    let node = self.node()?;
                    if node.is_null() {
                        continue;
                    }
                    if root.is_some() {
                        return Err(YamlError {
                            pos: Pos::from_marker(&span.start),
                            message: "a validation file must hold a single YAML document".into(),
                        });
                    }
                    root = Some(node);
                }
                _ => {
                    return Err(YamlError {
                        pos: Pos::from_marker(&span.start),
                        message: "invalid YAML: unexpected content outside a document".into(),
                    });
                }
            }
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node, weight: usize) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone(), weight));
        }
    }

    /// Adds `w` to the tree's weight, failing once it is over the budget.
    fn charge(&mut self, w: usize, pos: Pos) -> Result<(), YamlError> {
        self.weight = self.weight.saturating_add(w);
        if self.weight > self.budget {
            return Err(YamlError {
                pos,
                message: format!(
                    "the YAML expands to more than {} MiB (aliases repeat their anchored content)",
                    self.budget >> 20
                ),
            });
        }
        Ok(())
    }

    fn node(&mut self) -> Result<Node, YamlError> {
        let start = self.weight;
        let (ev, span) = self.next()?;
        let pos = Pos::from_marker(&span.start);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                self.charge(NODE_WEIGHT + value.len(), pos)?;
                let node = Node {
                    pos,
                    span,
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        style,
                    },
                };
                self.remember(anchor, &node, self.weight - start);
                Ok(node)
            }
            Event::Alias(id) => {
                let Some(weight) = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _, _)| *a == id)
                    .map(|(_, _, w)| *w)
                else {
                    return Err(YamlError {
                        pos,
                        message: "invalid YAML: alias to an unknown anchor".into(),
                    });
                };
                // Charged before copying: the budget must stop the copy, not follow it.
                self.charge(weight, pos)?;
                let kind = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _, _)| *a == id)
                    .map(|(_, n, _)| n.kind.clone())
                    .unwrap_or(NodeKind::Scalar {
                        value: String::new(),
                        style: saphyr_parser::ScalarStyle::Plain,
                    });
                Ok(Node { pos, span, kind })
            }
            Event::SequenceStart(anchor, _) => {
                self.charge(NODE_WEIGHT, pos)?;
                self.enter(pos)?;
                let mut items = Vec::new();
                while !matches!(self.events.peek(), Some(Ok((Event::SequenceEnd, _)))) {
                    items.push(self.node()?);
                }
                self.next()?;
                self.depth -= 1;
                let node = Node {
                    pos,
                    span,
                    kind: NodeKind::Sequence(items),
                };
                self.remember(anchor, &node, self.weight - start);
                Ok(node)
            }
            Event::MappingStart(anchor, _) => {
                self.charge(NODE_WEIGHT, pos)?;
                self.enter(pos)?;
                let mut pairs: Vec<(Node, Node)> = Vec::new();
                // Key → line of its first occurrence: duplicate detection stays linear.
                let mut seen: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                while !matches!(self.events.peek(), Some(Ok((Event::MappingEnd, _)))) {
                    let key = self.node()?;
                    let Some(k) = key.as_str() else {
                        return Err(YamlError {
                            pos: key.pos,
                            message: "mapping keys must be strings".into(),
                        });
                    };
                    if let Some(line) = seen.get(k) {
                        return Err(YamlError {
                            pos: key.pos,
                            message: format!(
                                "duplicate key `{}` (first defined at line {line})",
                                crate::service::cap_message(k.to_string(), 100)
                            ),
                        });
                    }
                    seen.insert(k.to_string(), key.pos.line);
                    let value = self.node()?;
                    pairs.push((key, value));
                }
                self.next()?;
                self.depth -= 1;
                let node = Node {
                    pos,
                    span,
                    kind: NodeKind::Mapping(pairs),
                };
                self.remember(anchor, &node, self.weight - start);
                Ok(node)
            }
            _ => Err(YamlError {
                pos,
                message: "invalid YAML: unexpected event".into(),
            }),
        }
    }

    fn enter(&mut self, pos: Pos) -> Result<(), YamlError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(YamlError {
                pos,
                message: format!("YAML nested more than {MAX_NESTING} levels deep"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Node {
        Source::new(text).parse().unwrap().unwrap()
    }

    #[test]
    fn aliases_cannot_expand_past_the_budget() {
        // Each level holds ten aliases of the one below: 10^9 leaves from a few lines.
        let mut text = String::from("l0: &l0 [\"xxxxxxxxxxxxxxxxxxxxxxxx\"]\n");
        for i in 1..10 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        let err = Source::new(&text).parse().expect_err("refused");
        assert!(
            err.message.contains("expands to more than 64 MiB"),
            "{}",
            err.message
        );
        // A few aliases are fine.
        let ok = parse("a: &a [1, 2]\nb: [*a, *a]\n");
        assert!(matches!(ok.kind, NodeKind::Mapping(_)));
    }

    #[test]
    fn duplicate_keys_are_found_in_large_mappings() {
        let mut text: String = (0..50_000).map(|i| format!("k{i}: 1\n")).collect();
        text.push_str("k123: 2\n");
        let err = Source::new(&text).parse().expect_err("duplicate");
        assert!(
            err.message
                .starts_with("duplicate key `k123` (first defined at line 124)"),
            "{}",
            err.message
        );
    }

    fn get<'n>(node: &'n Node, key: &str) -> &'n Node {
        match &node.kind {
            NodeKind::Mapping(pairs) => {
                &pairs
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .unwrap()
                    .1
            }
            _ => panic!("not a mapping"),
        }
    }

    #[test]
    fn positions_of_entries() {
        let text = "a:\n  - one\n  - \"two\"\nb: x\n";
        let root = parse(text);
        let NodeKind::Sequence(items) = &get(&root, "a").kind else {
            panic!()
        };
        assert_eq!(items[0].pos, Pos::new(2, 5));
        assert_eq!(items[1].pos, Pos::new(3, 5));
        assert_eq!(get(&root, "b").pos, Pos::new(4, 4));
    }

    #[test]
    fn block_lines_map_to_file_lines() {
        let text =
            "x: 1\nrels: |-\n\n  a#b@c\n    // indented\n\n  d#e@f\n# trailing comment\ny: 2\n";
        let src = Source::new(text);
        let root = src.parse().unwrap().unwrap();
        let lines = src.scalar_lines(get(&root, "rels"));
        let got: Vec<(usize, usize, &str)> = lines
            .iter()
            .map(|l| (l.pos.line, l.pos.column, l.text))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, 1, ""),
                (4, 3, "a#b@c"),
                (5, 3, "  // indented"),
                (6, 1, ""),
                (7, 3, "d#e@f"),
            ]
        );
    }

    #[test]
    fn folded_block_keeps_raw_lines() {
        let text = "rels: >-\n  a#b@c\n  d#e@f\n";
        let src = Source::new(text);
        let root = src.parse().unwrap().unwrap();
        let lines: Vec<_> = src
            .scalar_lines(get(&root, "rels"))
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(lines, vec!["a#b@c", "d#e@f"]);
    }

    #[test]
    fn embedded_text_keeps_line_numbers() {
        let text = "relationships: ''\nschema: |  # the schema\n  definition user {}\n\n  definition doc {}\nz: 1\n";
        let src = Source::new(text);
        let root = src.parse().unwrap().unwrap();
        let embedded = src.embedded_text(get(&root, "schema"));
        let lines: Vec<&str> = embedded.lines().collect();
        assert_eq!(lines[0], "");
        assert_eq!(lines[1], "");
        assert_eq!(lines[2], "  definition user {}");
        assert_eq!(lines[4], "  definition doc {}");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn errors_have_positions() {
        let err = Source::new("a: [1,\n").parse().unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{err}");
        assert_eq!(err.pos.line, 2);
        let err = Source::new("a: 1\na: 2\n").parse().unwrap_err();
        assert_eq!(err.pos, Pos::new(2, 1));
        assert!(err.message.contains("duplicate key `a`"));
        let err = Source::new("a: 1\n---\nb: 2\n").parse().unwrap_err();
        assert!(err.message.contains("single YAML document"));
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(
            Source::new(&deep)
                .parse()
                .unwrap_err()
                .message
                .contains("nested")
        );
    }

    #[test]
    fn positions_inside_scalars() {
        let text = "a: x:1#y@z\nb: \"x:1#y@z\"\nc: \"x\\u003a1\"\n";
        let src = Source::new(text);
        let root = src.parse().unwrap().unwrap();
        assert_eq!(src.pos_in_scalar(get(&root, "a"), 4), Pos::new(1, 8));
        assert_eq!(src.pos_in_scalar(get(&root, "b"), 4), Pos::new(2, 9));
        // An escape makes the mapping unknown: fall back to the node.
        assert_eq!(src.pos_in_scalar(get(&root, "c"), 2), Pos::new(3, 4));
    }

    #[test]
    fn empty_documents_are_none() {
        assert!(Source::new("").parse().unwrap().is_none());
        assert!(Source::new("# just a comment\n").parse().unwrap().is_none());
    }

    #[test]
    fn aliases_resolve() {
        let root = parse("a: &x hello\nb: *x\n");
        assert_eq!(get(&root, "b").as_str(), Some("hello"));
        assert_eq!(get(&root, "b").pos, Pos::new(2, 4));
    }
}
