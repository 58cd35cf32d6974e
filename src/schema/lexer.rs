//! Tokens of the schema language, produced on demand for the parser.
//!
//! The lexer is pulled one token at a time so that the parser can hand it the raw text of
//! a caveat's CEL body (which has its own lexical rules) without tokenising it. Whitespace
//! and comments are trivia: each token records whether a line break preceded it (a line
//! break ends a statement, as in the reference) and the doc comment directly above it.

use std::ops::Range;

use super::limits::{DiagnosticSink, MAX_NAME_BYTES, quoted};
use super::{Diagnostic, Severity};

/// The kinds of tokens. Keywords are plain [`TokenKind::Word`]s: the parser recognises them
/// by position, so `relation relation: user` or a type named `caveat` still parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// `[A-Za-z0-9_]+` segments joined by `/` (type prefixes): names and keywords.
    Word,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Colon,
    Pipe,
    Hash,
    Star,
    Equals,
    Plus,
    Amp,
    Minus,
    Arrow,
    Dot,
    Comma,
    Semicolon,
    Lt,
    Gt,
    Eof,
}

impl TokenKind {
    /// How the token is named in "expected ..., found ..." messages (for non-words).
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            TokenKind::Word => "a name",
            TokenKind::LBrace => "`{`",
            TokenKind::RBrace => "`}`",
            TokenKind::LParen => "`(`",
            TokenKind::RParen => "`)`",
            TokenKind::Colon => "`:`",
            TokenKind::Pipe => "`|`",
            TokenKind::Hash => "`#`",
            TokenKind::Star => "`*`",
            TokenKind::Equals => "`=`",
            TokenKind::Plus => "`+`",
            TokenKind::Amp => "`&`",
            TokenKind::Minus => "`-`",
            TokenKind::Arrow => "`->`",
            TokenKind::Dot => "`.`",
            TokenKind::Comma => "`,`",
            TokenKind::Semicolon => "`;`",
            TokenKind::Lt => "`<`",
            TokenKind::Gt => "`>`",
            TokenKind::Eof => "end of file",
        }
    }
}

/// One token with its byte span and the trivia that preceded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Range<usize>,
    /// A line break (outside the token) separates this token from the previous one.
    pub newline_before: bool,
    /// The comment block directly above this token (no blank line in between, each comment
    /// starting its own line), without comment markers.
    pub doc: Option<String>,
    /// Characters that could not be lexed were skipped right before this token (and
    /// reported): the parser stays quiet about this token to avoid a cascade of errors.
    pub after_garbage: bool,
}

/// An on-demand tokenizer over one source text. Problems (garbage characters, unterminated
/// comments) are collected in `diagnostics`; lexing always continues.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// A token has already been produced on the current line: a comment starting here is a
    /// trailing comment, not documentation for what follows.
    line_dirty: bool,
    pub diagnostics: DiagnosticSink,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The kind of the token starting at byte `at`, if a token can start there.
fn token_kind_at(bytes: &[u8], at: usize) -> Option<TokenKind> {
    Some(match *bytes.get(at)? {
        b'{' => TokenKind::LBrace,
        b'}' => TokenKind::RBrace,
        b'(' => TokenKind::LParen,
        b')' => TokenKind::RParen,
        b':' => TokenKind::Colon,
        b'|' => TokenKind::Pipe,
        b'#' => TokenKind::Hash,
        b'*' => TokenKind::Star,
        b'=' => TokenKind::Equals,
        b'+' => TokenKind::Plus,
        b'&' => TokenKind::Amp,
        b'-' if bytes.get(at + 1) == Some(&b'>') => TokenKind::Arrow,
        b'-' => TokenKind::Minus,
        b'.' => TokenKind::Dot,
        b',' => TokenKind::Comma,
        b';' => TokenKind::Semicolon,
        b'<' => TokenKind::Lt,
        b'>' => TokenKind::Gt,
        b if is_word_byte(b) => TokenKind::Word,
        _ => return None,
    })
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            line_dirty: false,
            diagnostics: DiagnosticSink::default(),
        }
    }

    fn byte_at(&self, i: usize) -> Option<u8> {
        self.src.as_bytes().get(i).copied()
    }

    fn error(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        self.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            message,
            span,
            hint,
        });
    }

    /// Produces the next token, skipping whitespace and comments. At the end of input it
    /// keeps returning [`TokenKind::Eof`].
    pub(crate) fn next_token(&mut self) -> Token {
        let mut newline_before = false;
        let mut doc_parts: Vec<String> = Vec::new();
        // Line breaks since the last doc comment ended: two mean a blank line, which
        // detaches the comments above it from whatever follows.
        let mut breaks_since_comment = 0usize;
        let mut after_garbage = false;
        loop {
            let Some(b) = self.byte_at(self.pos) else {
                return Token {
                    kind: TokenKind::Eof,
                    span: self.src.len()..self.src.len(),
                    newline_before: true,
                    doc: None,
                    after_garbage,
                };
            };
            match b {
                b'\n' => {
                    self.pos += 1;
                    newline_before = true;
                    self.line_dirty = false;
                    breaks_since_comment += 1;
                }
                b' ' | b'\t' | b'\r' | 0x0b | 0x0c => self.pos += 1,
                b'/' if self.byte_at(self.pos + 1) == Some(b'/') => {
                    let start = self.pos;
                    let end = self.src[start..]
                        .find('\n')
                        .map_or(self.src.len(), |i| start + i);
                    self.pos = end;
                    if self.line_dirty {
                        doc_parts.clear();
                    } else {
                        if breaks_since_comment >= 2 {
                            doc_parts.clear();
                        }
                        doc_parts.push(line_comment_text(&self.src[start..end]));
                        breaks_since_comment = 0;
                    }
                }
                b'/' if self.byte_at(self.pos + 1) == Some(b'*') => {
                    let start = self.pos;
                    let Some(close) = self.src[start + 2..].find("*/") else {
                        self.error(
                            start..start + 2,
                            "unterminated block comment".into(),
                            Some("close the comment with `*/`".into()),
                        );
                        self.pos = self.src.len();
                        continue;
                    };
                    let end = start + 2 + close + 2;
                    self.pos = end;
                    let text = &self.src[start..end];
                    if self.line_dirty {
                        doc_parts.clear();
                    } else {
                        if breaks_since_comment >= 2 {
                            doc_parts.clear();
                        }
                        doc_parts.push(block_comment_text(text));
                        breaks_since_comment = 0;
                    }
                    if text.contains('\n') {
                        // A comment spanning lines separates statements like a line break.
                        newline_before = true;
                        self.line_dirty = false;
                    }
                }
                _ => {
                    if let Some(kind) = token_kind_at(self.src.as_bytes(), self.pos) {
                        let start = self.pos;
                        let end = self.token_end(kind, start);
                        self.pos = end;
                        self.line_dirty = true;
                        if kind == TokenKind::Word && end - start > MAX_NAME_BYTES {
                            // No valid name is this long; refusing it here also keeps every
                            // later message that quotes a name short.
                            self.error(
                                start..end,
                                format!(
                                    "name `{}` is {} bytes long, more than the limit of {MAX_NAME_BYTES}",
                                    quoted(&self.src[start..end]),
                                    end - start
                                ),
                                None,
                            );
                        }
                        let doc = if breaks_since_comment < 2 {
                            join_doc(doc_parts)
                        } else {
                            None
                        };
                        return Token {
                            kind,
                            span: start..end,
                            newline_before,
                            doc,
                            after_garbage,
                        };
                    }
                    self.skip_garbage();
                    after_garbage = true;
                    // Garbage breaks the link between a comment and what follows.
                    self.line_dirty = true;
                    doc_parts.clear();
                }
            }
        }
    }

    fn token_end(&self, kind: TokenKind, start: usize) -> usize {
        match kind {
            TokenKind::Arrow => start + 2,
            TokenKind::Word => {
                let bytes = self.src.as_bytes();
                let mut i = start;
                loop {
                    while i < bytes.len() && is_word_byte(bytes[i]) {
                        i += 1;
                    }
                    // `tenant/document`: a `/` joins two name segments (but `a//x` and `a/*`
                    // start comments).
                    if i + 1 < bytes.len() && bytes[i] == b'/' && is_word_byte(bytes[i + 1]) {
                        i += 1;
                        continue;
                    }
                    return i;
                }
            }
            _ => start + 1,
        }
    }

    /// Reports a run of characters that cannot start a token, as one diagnostic.
    fn skip_garbage(&mut self) {
        let start = self.pos;
        let mut end = start;
        for (i, c) in self.src[start..].char_indices() {
            let at = start + i;
            let starts_token = c.is_ascii_whitespace()
                || c == '/'
                || token_kind_at(self.src.as_bytes(), at).is_some();
            if starts_token && at > start {
                break;
            }
            end = at + c.len_utf8();
        }
        self.pos = end;
        let text = &self.src[start..end];
        let shown = quoted(
            &text
                .chars()
                .flat_map(char::escape_debug)
                .collect::<String>(),
        );
        let (message, hint) = if text.chars().count() == 1 {
            (
                format!("unexpected character `{shown}`"),
                garbage_hint(text),
            )
        } else {
            (
                format!("unexpected characters `{shown}`"),
                garbage_hint(text),
            )
        };
        self.error(start..end, message, hint);
    }

    /// Scans the raw CEL text of a caveat body that starts at `start` (just after its `{`),
    /// up to the matching `}`. Braces inside CEL string literals and `//` comments do not
    /// count. Returns the body's span (without the braces) and continues lexing after the
    /// `}`; returns `None` at the end of input without a matching brace.
    pub(crate) fn scan_cel_body(&mut self, start: usize) -> Option<Range<usize>> {
        let bytes = self.src.as_bytes();
        let mut depth = 1usize;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => {
                    depth += 1;
                    i += 1;
                }
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos = i + 1;
                        self.line_dirty = true;
                        return Some(start..i);
                    }
                    i += 1;
                }
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                q @ (b'"' | b'\'') => {
                    let raw = i > start && matches!(bytes[i - 1], b'r' | b'R');
                    i = skip_cel_string(bytes, i, q, raw);
                }
                _ => i += 1,
            }
        }
        self.pos = bytes.len();
        None
    }
}

/// Skips a CEL string literal opening at `i` with quote `q`; returns the index after it.
/// Single-quoted-style literals end at a line break when unterminated, so a stray quote
/// does not swallow the rest of the file (CEL itself then reports the bad literal).
fn skip_cel_string(bytes: &[u8], i: usize, q: u8, raw: bool) -> usize {
    let triple = bytes.get(i + 1) == Some(&q) && bytes.get(i + 2) == Some(&q);
    let mut j = if triple { i + 3 } else { i + 1 };
    while j < bytes.len() {
        let b = bytes[j];
        if b == b'\\' && !raw {
            j += 2;
            continue;
        }
        if triple {
            if b == q && bytes.get(j + 1) == Some(&q) && bytes.get(j + 2) == Some(&q) {
                return j + 3;
            }
        } else if b == q {
            return j + 1;
        } else if b == b'\n' {
            return j;
        }
        j += 1;
    }
    bytes.len()
}

fn garbage_hint(text: &str) -> Option<String> {
    if text.starts_with('"') || text.starts_with('\'') {
        Some("strings are only allowed inside caveat expressions".into())
    } else if text.starts_with('!') {
        Some("exclusion is written `a - b`".into())
    } else if text.starts_with('@') {
        Some("relationships are not written in a schema; use relation types like `user`".into())
    } else {
        None
    }
}

/// The text of a `// ...` comment: markers and one following space removed.
fn line_comment_text(comment: &str) -> String {
    let body = comment.trim_start_matches('/');
    let body = body.strip_prefix(' ').unwrap_or(body);
    body.trim_end().to_string()
}

/// The text of a `/* ... */` or `/** ... */` comment: markers removed, and on continuation
/// lines the leading whitespace and `*` gutter (plus one space).
fn block_comment_text(comment: &str) -> String {
    // Suffix first, so that `/**/` is empty rather than `/`.
    let inner = comment.strip_suffix("*/").unwrap_or(comment);
    let inner = inner
        .strip_prefix("/*")
        .unwrap_or(inner)
        .trim_start_matches('*');
    let mut lines: Vec<String> = Vec::new();
    for (n, line) in inner.split('\n').enumerate() {
        let line = line.trim_end();
        let text = if n == 0 {
            line.trim_start()
        } else {
            let t = line.trim_start();
            match t.strip_prefix('*') {
                Some(rest) => rest.strip_prefix(' ').unwrap_or(rest),
                None => t,
            }
        };
        lines.push(text.to_string());
    }
    trim_blank_lines(&lines).join("\n")
}

fn trim_blank_lines(lines: &[String]) -> &[String] {
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |e| e + 1);
    &lines[start..end]
}

/// Joins the comments of a doc block; an all-blank block is no doc at all.
fn join_doc(parts: Vec<String>) -> Option<String> {
    let lines: Vec<String> = parts
        .iter()
        .flat_map(|p| p.split('\n').map(str::to_string))
        .collect();
    let lines = trim_blank_lines(&lines);
    if lines.is_empty() {
        None
    } else {
        Some(lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token();
            if t.kind == TokenKind::Eof {
                return out;
            }
            out.push(t.kind);
        }
    }

    fn tokens(src: &str) -> (Vec<Token>, Vec<Diagnostic>) {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token();
            if t.kind == TokenKind::Eof {
                return (out, lx.diagnostics.items);
            }
            out.push(t);
        }
    }

    #[test]
    fn punctuation_and_arrows() {
        use TokenKind::*;
        assert_eq!(
            kinds("a->b - c.any(d) {}:|#*=+&,;<>"),
            vec![
                Word, Arrow, Word, Minus, Word, Dot, Word, LParen, Word, RParen, LBrace, RBrace,
                Colon, Pipe, Hash, Star, Equals, Plus, Amp, Comma, Semicolon, Lt, Gt
            ]
        );
    }

    #[test]
    fn prefixed_names_are_one_word_but_comments_are_not() {
        let (toks, diags) = tokens("tenant/sub/document a//comment\nb/*c*/");
        assert!(diags.is_empty());
        let texts: Vec<_> = toks
            .iter()
            .map(|t| &"tenant/sub/document a//comment\nb/*c*/"[t.span.clone()])
            .collect();
        assert_eq!(texts, vec!["tenant/sub/document", "a", "b"]);
        assert!(toks[2].newline_before);
        assert!(!toks[1].newline_before);
    }

    #[test]
    fn unterminated_block_comment_is_reported_once() {
        let (toks, diags) = tokens("definition a {}\n/* never closed\ndefinition b {}");
        assert_eq!(toks.len(), 4);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].message, "unterminated block comment");
        assert_eq!(diags[0].span, 16..18);
    }

    #[test]
    fn garbage_runs_are_one_diagnostic_and_lexing_continues() {
        let (toks, diags) = tokens("a @@€ b ! c");
        assert_eq!(toks.len(), 3);
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[0].message, "unexpected characters `@@€`");
        assert_eq!(diags[0].span, 2..7);
        assert_eq!(diags[1].message, "unexpected character `!`");
    }

    #[test]
    fn doc_comments_attach_only_when_directly_above() {
        let src = "/** Users. */\ndefinition user {}\n\n// first\n// second\ndefinition doc {\n    relation a: user // trailing\n    relation b: user\n}\n// detached\n\ndefinition x {}";
        let (toks, _) = tokens(src);
        let docs: Vec<_> = toks
            .iter()
            .filter(|t| t.doc.is_some())
            .map(|t| (&src[t.span.clone()], t.doc.clone().unwrap()))
            .collect();
        assert_eq!(
            docs,
            vec![
                ("definition", "Users.".to_string()),
                ("definition", "first\nsecond".to_string()),
            ]
        );
    }

    #[test]
    fn block_doc_gutters_are_stripped() {
        let src = "/**\n * Line one.\n *\n *   indented\n */\ndefinition a {}";
        let (toks, _) = tokens(src);
        assert_eq!(toks[0].doc.as_deref(), Some("Line one.\n\n  indented"));
    }

    #[test]
    fn cel_body_skips_braces_in_strings_and_comments() {
        let src = "{ a == \"}\" && b == '{' // }\n && r\"\\\" == x && {'k': 1}.size() > 0 } next";
        let mut lx = Lexer::new(src);
        let open = lx.next_token();
        assert_eq!(open.kind, TokenKind::LBrace);
        let body = lx.scan_cel_body(open.span.end).unwrap();
        assert_eq!(body, 1..src.len() - 6);
        let next = lx.next_token();
        assert_eq!(&src[next.span], "next");
    }

    #[test]
    fn unterminated_cel_body_returns_none() {
        let mut lx = Lexer::new("{ a == 1 ");
        let open = lx.next_token();
        assert_eq!(lx.scan_cel_body(open.span.end), None);
        assert_eq!(lx.next_token().kind, TokenKind::Eof);
    }
}
