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

/// Items [`fmt::Display`] renders; the rest are counted on a last line.
pub(crate) const DISPLAY_ITEMS: usize = 50;
/// Characters of a source line shown before the caret; longer lines are cut with `…`.
const CONTEXT_BEFORE: usize = 80;
/// Characters of the underlined text shown (the carets follow).
const MAX_UNDERLINE: usize = 80;
/// Characters of a source line shown after the underlined text.
const CONTEXT_AFTER: usize = 80;

/// The last `n` characters of `text`, with `…` in front when there were more.
fn tail_chars(text: &str, n: usize) -> String {
    match text.char_indices().rev().nth(n.saturating_sub(1)) {
        Some((at, _)) if at > 0 => {
            let keep = text[at..]
                .char_indices()
                .nth(1)
                .map_or(text.len(), |(i, _)| at + i);
            format!("…{}", &text[keep..])
        }
        _ => text.to_string(),
    }
}

/// The first `n` characters of `text`, with `…` after them when there were more.
fn head_chars(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((at, _)) => {
            let keep = text[..at].char_indices().last().map_or(0, |(i, _)| i);
            format!("{}…", &text[..keep])
        }
        None => text.to_string(),
    }
}

fn render_one(
    out: &mut dyn fmt::Write,
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
    let line_end = line_start + text.len();
    let before = &index.src[line_start..start.min(line_end)];
    let end = index.floor_boundary(d.span.end.max(start));
    let underlined = &index.src[start.min(line_end)..end.min(line_end).max(start.min(line_end))];
    let after = &index.src[(start + underlined.len()).min(line_end)..line_end];
    // The excerpt: a bounded window of the line around the caret, so a diagnostic on a line
    // of a million characters costs what one on a short line does.
    let before = tail_chars(before, CONTEXT_BEFORE);
    let underlined = head_chars(underlined, MAX_UNDERLINE);
    let after = head_chars(after, CONTEXT_AFTER);
    let carets = display_width(&underlined).max(1);
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    writeln!(out, "{pad} --> {file_name}:{line}:{col}")?;
    writeln!(out, "{pad} |")?;
    writeln!(
        out,
        "{number} | {}",
        expand_tabs(&format!("{before}{underlined}{after}"))
    )?;
    writeln!(
        out,
        "{pad} | {}{}",
        " ".repeat(display_width(&before)),
        "^".repeat(carets)
    )?;
    if let Some(hint) = &d.hint {
        writeln!(out, "{pad} = help: {hint}")?;
    }
    Ok(())
}

/// The last line when items were left out: `… and 3 more errors and 1 more warning`.
fn more_line(errors: usize, warnings: usize) -> Option<String> {
    let plural = |n: usize, what: &str| format!("{n} more {what}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => None,
        (e, 0) => Some(format!("… and {}", plural(e, "error"))),
        (0, w) => Some(format!("… and {}", plural(w, "warning"))),
        (e, w) => Some(format!(
            "… and {} and {}",
            plural(e, "error"),
            plural(w, "warning")
        )),
    }
}

/// Renders items (at most `max_items`, and while they fit in `max_bytes`), separated by blank
/// lines, then counts what was left out.
fn render_bounded(diags: &Diagnostics, max_items: usize, max_bytes: usize) -> String {
    // Room kept for the "… and N more" line.
    const FOOTER: usize = 80;
    let index = LineIndex::new(&diags.source);
    let mut out = String::new();
    let mut shown = 0;
    for d in diags.items.iter().take(max_items) {
        let mut item = String::new();
        if shown > 0 {
            item.push('\n');
        }
        // Writing to a String cannot fail.
        let _ = render_one(&mut item, &diags.file_name, &index, d);
        if out.len() + item.len() + FOOTER > max_bytes {
            if shown == 0 {
                // Not even one whole item fits: its first line (the message) must.
                let first = item.lines().next().unwrap_or_default();
                let budget = max_bytes.saturating_sub(FOOTER);
                out.push_str(&head_chars(first, budget / 4));
                out.push('\n');
                shown = 1;
            }
            break;
        }
        out.push_str(&item);
        shown += 1;
    }
    let hidden = &diags.items[shown.min(diags.items.len())..];
    let errors = hidden
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count()
        + diags.omitted_errors;
    let warnings = hidden.len() - (errors - diags.omitted_errors) + diags.omitted_warnings;
    if let Some(more) = more_line(errors, warnings) {
        out.push('\n');
        out.push_str(&more);
        out.push('\n');
    }
    out
}

/// Renders the first [`DISPLAY_ITEMS`] items, separated by blank lines, and counts the rest.
pub(crate) fn render(diags: &Diagnostics, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    out.write_str(&render_bounded(diags, DISPLAY_ITEMS, usize::MAX))
}

/// As many items as fit in `max_bytes` (see [`Diagnostics::render_within`]).
pub(crate) fn render_within(diags: &Diagnostics, max_bytes: usize) -> String {
    render_bounded(diags, DISPLAY_ITEMS, max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diags(source: &str, items: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics {
            file_name: "s.zed".into(),
            source: source.into(),
            items,
            omitted_errors: 0,
            omitted_warnings: 0,
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
