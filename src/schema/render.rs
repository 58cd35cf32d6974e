//! Rendering diagnostics for people:
//!
//! ```text
//! error: unknown object type `usr`
//!   --> schema.zed:4:22
//!    |
//!  4 |     relation viewer: usr
//!    |                      ^^^
//!    = help: did you mean `user`?
//! ```
//!
//! Lines and columns are 1-based; columns count characters. Tabs are shown as four spaces
//! (the caret follows). A span over several lines is underlined to the end of its first line.

use std::fmt;

use super::{Diagnostic, Diagnostics, Severity};

/// Where each line of a source starts, for offset → line/column lookups.
pub(crate) struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { src, starts }
    }

    fn floor_boundary(&self, offset: usize) -> usize {
        let mut at = offset.min(self.src.len());
        while !self.src.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    /// 0-based line index containing `offset`.
    fn line_index(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|s| *s <= offset)
            .saturating_sub(1)
    }

    /// The text of line `i` (0-based), without its line break.
    fn line_text(&self, i: usize) -> &'a str {
        let start = self.starts[i];
        let end = self
            .starts
            .get(i + 1)
            .map_or(self.src.len(), |next| next - 1);
        self.src[start..end].trim_end_matches('\r')
    }

    /// 1-based line and character column of a byte offset (clamped into the source).
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let at = self.floor_boundary(offset);
        let line = self.line_index(at);
        let col = self.src[self.starts[line]..at].chars().count() + 1;
        (line + 1, col)
    }
}

fn display_width(text: &str) -> usize {
    text.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

fn expand_tabs(text: &str) -> String {
    text.replace('\t', "    ")
}

fn render_one(
    out: &mut fmt::Formatter<'_>,
    file_name: &str,
    index: &LineIndex<'_>,
    d: &Diagnostic,
) -> fmt::Result {
    let label = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    writeln!(out, "{label}: {}", d.message)?;
    let start = index.floor_boundary(d.span.start);
    let (line, col) = index.line_column(start);
    let text = index.line_text(line - 1);
    let line_start = index.starts[line - 1];
    let before = &index.src[line_start..start];
    let end = index.floor_boundary(d.span.end.max(start));
    let underlined = &index.src[start..end.min(line_start + text.len()).max(start)];
    let carets = display_width(underlined).max(1);
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    writeln!(out, "{pad} --> {file_name}:{line}:{col}")?;
    writeln!(out, "{pad} |")?;
    writeln!(out, "{number} | {}", expand_tabs(text))?;
    writeln!(
        out,
        "{pad} | {}{}",
        " ".repeat(display_width(before)),
        "^".repeat(carets)
    )?;
    if let Some(hint) = &d.hint {
        writeln!(out, "{pad} = help: {hint}")?;
    }
    Ok(())
}

/// Renders every diagnostic, separated by blank lines.
pub(crate) fn render(diags: &Diagnostics, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    let index = LineIndex::new(&diags.source);
    for (i, d) in diags.items.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        render_one(out, &diags.file_name, &index, d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diags(source: &str, items: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics {
            file_name: "s.zed".into(),
            source: source.into(),
            items,
        }
    }

    fn item(severity: Severity, span: std::ops::Range<usize>, hint: Option<&str>) -> Diagnostic {
        Diagnostic {
            severity,
            message: "something is off".into(),
            span,
            hint: hint.map(str::to_string),
        }
    }

    #[test]
    fn renders_location_source_line_caret_and_help() {
        let src = "definition a {}\n\tdefinition é usr\n";
        let at = src.find("usr").unwrap();
        let d = diags(
            src,
            vec![item(
                Severity::Error,
                at..at + 3,
                Some("did you mean `user`?"),
            )],
        );
        assert_eq!(
            d.to_string(),
            "error: something is off\n  --> s.zed:2:15\n  |\n2 |     definition é usr\n  |                  ^^^\n  = help: did you mean `user`?\n"
        );
    }

    #[test]
    fn multiple_items_empty_spans_and_end_of_file() {
        let src = "abc\ndef";
        let d = diags(
            src,
            vec![
                item(Severity::Warning, 1..1, None),
                item(Severity::Error, 7..7, None),
                item(Severity::Error, 2..6, None),
            ],
        );
        assert_eq!(
            d.to_string(),
            "warning: something is off\n  --> s.zed:1:2\n  |\n1 | abc\n  |  ^\n\nerror: something is off\n  --> s.zed:2:4\n  |\n2 | def\n  |    ^\n\nerror: something is off\n  --> s.zed:1:3\n  |\n1 | abc\n  |   ^\n"
        );
    }

    #[test]
    fn wide_line_numbers_widen_the_gutter() {
        let src = "\n".repeat(11) + "xyz";
        let d = diags(&src, vec![item(Severity::Error, 11..14, None)]);
        assert_eq!(
            d.to_string(),
            "error: something is off\n   --> s.zed:12:1\n   |\n12 | xyz\n   | ^^^\n"
        );
    }

    #[test]
    fn out_of_range_spans_are_clamped() {
        let d = diags("é", vec![item(Severity::Error, 1..99, None)]);
        assert!(d.to_string().contains("s.zed:1:1"));
    }
}
