//! Recursive-descent parser: tokens → [`SchemaAst`], with error recovery so that every
//! syntax error of a file is reported.
//!
//! Statements (`use`, `relation`, `permission`) end at a line break or `;`, as in the
//! reference; inside parentheses and caveat parameter lists line breaks are insignificant.
//! Permission expressions follow the reference's precedence, from loosest to tightest:
//! `-`, then `&`, then `+`, then arrows; binary operators group left to right.

use std::mem;

use super::ast::*;
use super::lexer::{Lexer, Token, TokenKind};
use super::limits::{DiagnosticSink, quoted};
use super::{Diagnostic, Severity};

/// Deepest nesting of parentheses (and of generic caveat parameter types) accepted, so that
/// hostile input cannot exhaust the stack of the recursive parser or of later passes.
pub(crate) const MAX_NESTING: usize = 32;

/// The syntax tree plus every lexical/syntax error and syntax-level warning.
pub(crate) struct ParseOutput {
    pub ast: SchemaAst,
    pub diagnostics: DiagnosticSink,
}

pub(crate) fn parse(src: &str) -> ParseOutput {
    let mut lexer = Lexer::new(src);
    let tok = lexer.next_token();
    let mut p = Parser {
        src,
        lexer,
        tok,
        prev_end: 0,
        diags: DiagnosticSink::default(),
        depth: 0,
    };
    let ast = p.parse_file();
    let mut diagnostics = mem::take(&mut p.lexer.diagnostics);
    diagnostics.append(mem::take(&mut p.diags));
    ParseOutput { ast, diagnostics }
}

/// Marker: a syntax error was reported and the current statement must be abandoned.
struct Reported;

type PResult<T> = Result<T, Reported>;

const TOP_LEVEL_KEYWORDS: [&str; 3] = ["definition", "caveat", "use"];

struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    /// The current (lookahead) token. The lexer has produced nothing beyond it.
    tok: Token,
    prev_end: usize,
    diags: DiagnosticSink,
    /// Current parenthesis nesting inside an expression or type.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn bump(&mut self) -> Token {
        let next = self.lexer.next_token();
        let t = mem::replace(&mut self.tok, next);
        self.prev_end = t.span.end;
        t
    }

    fn text(&self, t: &Token) -> &'a str {
        &self.src[t.span.clone()]
    }

    fn at_word(&self, word: &str) -> bool {
        self.tok.kind == TokenKind::Word && self.text(&self.tok) == word
    }

    /// The current token is `kind` and continues the current statement: outside
    /// parentheses a line break before it ends the statement instead.
    fn at_continuation(&self, kind: TokenKind) -> bool {
        self.tok.kind == kind && (!self.tok.newline_before || self.depth > 0)
    }

    fn at_statement_end(&self) -> bool {
        matches!(
            self.tok.kind,
            TokenKind::Semicolon | TokenKind::RBrace | TokenKind::Eof
        ) || self.tok.newline_before
    }

    /// Describes the current token for "found ..." messages.
    fn found(&self) -> String {
        match self.tok.kind {
            TokenKind::Word => format!("`{}`", quoted(self.text(&self.tok))),
            k => k.symbol().to_string(),
        }
    }

    fn push(&mut self, severity: Severity, span: Span, message: String, hint: Option<String>) {
        self.diags.push(Diagnostic {
            severity,
            message,
            span,
            hint,
        });
    }

    fn error_here(&mut self, message: String, hint: Option<String>) -> Reported {
        // Right after skipped garbage the real problem has been reported already.
        if !self.tok.after_garbage {
            let span = self.tok.span.clone();
            self.push(Severity::Error, span, message, hint);
        }
        Reported
    }

    fn expect(&mut self, kind: TokenKind, what: &str, hint: Option<String>) -> PResult<Token> {
        if self.tok.kind == kind {
            return Ok(self.bump());
        }
        let msg = format!("expected {what}, found {}", self.found());
        Err(self.error_here(msg, hint))
    }

    fn expect_ident(&mut self, what: &str) -> PResult<Ident> {
        if self.tok.kind == TokenKind::Word {
            let t = self.bump();
            return Ok(Ident {
                name: self.text(&t).to_string(),
                span: t.span,
            });
        }
        let msg = format!("expected {what}, found {}", self.found());
        Err(self.error_here(msg, None))
    }

    fn line_of(&self, offset: usize) -> usize {
        self.src[..offset.min(self.src.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    // ---- recovery -------------------------------------------------------------------

    /// Skips to the next top-level keyword at the start of a line (or the end of input).
    fn recover_top_level(&mut self) {
        if self.tok.kind != TokenKind::Eof {
            self.bump();
        }
        while self.tok.kind != TokenKind::Eof {
            let at_keyword = self.tok.kind == TokenKind::Word
                && TOP_LEVEL_KEYWORDS.contains(&self.text(&self.tok));
            if at_keyword && self.tok.newline_before {
                return;
            }
            self.bump();
        }
    }

    /// Skips the rest of a broken statement inside a definition. With `force`, the current
    /// token is skipped even if it could start the next statement (it caused the error).
    fn recover_member(&mut self, force: bool) {
        self.depth = 0;
        if force && !matches!(self.tok.kind, TokenKind::RBrace | TokenKind::Eof) {
            self.bump();
        }
        loop {
            match self.tok.kind {
                TokenKind::Eof | TokenKind::RBrace => return,
                TokenKind::Semicolon => {
                    self.bump();
                    return;
                }
                _ if self.tok.newline_before => return,
                _ => {
                    self.bump();
                }
            }
        }
    }

    // ---- items ----------------------------------------------------------------------

    fn parse_file(&mut self) -> SchemaAst {
        let mut ast = SchemaAst::default();
        loop {
            match self.tok.kind {
                TokenKind::Eof => return ast,
                TokenKind::Semicolon => {
                    self.bump();
                }
                TokenKind::Word if self.at_word("definition") => match self.parse_definition() {
                    Ok(d) => ast.items.push(Item::Definition(d)),
                    Err(Reported) => self.recover_top_level(),
                },
                TokenKind::Word if self.at_word("caveat") => match self.parse_caveat() {
                    Ok(c) => ast.items.push(Item::Caveat(c)),
                    Err(Reported) => self.recover_top_level(),
                },
                TokenKind::Word if self.at_word("use") => match self.parse_use() {
                    Ok(u) => ast.items.push(Item::Use(u)),
                    Err(Reported) => self.recover_top_level(),
                },
                _ => {
                    let hint = match self.tok.kind {
                        TokenKind::Word => {
                            let word = self.text(&self.tok);
                            if matches!(word, "relation" | "permission") {
                                Some(format!("`{word}` belongs inside a `definition {{ ... }}`"))
                            } else {
                                super::checker::suggest(word, TOP_LEVEL_KEYWORDS.into_iter())
                                    .map(|s| format!("did you mean `{s}`?"))
                            }
                        }
                        _ => None,
                    };
                    let msg = format!(
                        "expected `definition`, `caveat` or `use`, found {}",
                        self.found()
                    );
                    self.error_here(msg, hint);
                    self.recover_top_level();
                }
            }
        }
    }

    fn parse_use(&mut self) -> PResult<Ident> {
        self.bump();
        let feature = self.expect_ident("a feature name after `use`")?;
        self.expect_terminator("`use` statement", None)?;
        Ok(feature)
    }

    /// A statement ends at `;` (consumed), `}` or end of input (not consumed), or before a
    /// token on a new line.
    fn expect_terminator(&mut self, what: &str, hint: Option<String>) -> PResult<()> {
        if self.tok.kind == TokenKind::Semicolon {
            self.bump();
            return Ok(());
        }
        if self.at_statement_end() {
            return Ok(());
        }
        let msg = format!("expected the end of the {what}, found {}", self.found());
        Err(self.error_here(msg, hint))
    }

    fn parse_definition(&mut self) -> PResult<DefinitionDecl> {
        let kw = self.bump();
        let name = self.expect_ident("a definition name after `definition`")?;
        self.expect(
            TokenKind::LBrace,
            &format!("`{{` after `definition {}`", name.name),
            None,
        )?;
        let def_start = kw.span.start;
        let mut def = DefinitionDecl {
            name,
            doc: kw.doc,
            members: Vec::new(),
        };
        loop {
            match self.tok.kind {
                TokenKind::RBrace => {
                    self.bump();
                    return Ok(def);
                }
                TokenKind::Eof => {
                    // An error already reported at the end of input says as much.
                    if self
                        .diags
                        .items
                        .last()
                        .is_some_and(|d| d.span.start >= self.src.len())
                    {
                        return Ok(def);
                    }
                    let msg = format!(
                        "unexpected end of file: definition `{}` is missing its closing `}}`",
                        def.name.name
                    );
                    let hint = format!("the definition starts on line {}", self.line_of(def_start));
                    self.error_here(msg, Some(hint));
                    return Ok(def);
                }
                TokenKind::Semicolon => {
                    self.bump();
                }
                TokenKind::Word if self.at_word("relation") => match self.parse_relation() {
                    Ok(r) => def.members.push(Member::Relation(r)),
                    Err(Reported) => self.recover_member(false),
                },
                TokenKind::Word if self.at_word("permission") => match self.parse_permission() {
                    Ok(p) => def.members.push(Member::Permission(p)),
                    Err(Reported) => self.recover_member(false),
                },
                TokenKind::Word
                    if self.tok.newline_before
                        && TOP_LEVEL_KEYWORDS.contains(&self.text(&self.tok)) =>
                {
                    let msg = format!(
                        "expected `}}` to close definition `{}`, found {}",
                        def.name.name,
                        self.found()
                    );
                    let hint = format!("the definition starts on line {}", self.line_of(def_start));
                    self.error_here(msg, Some(hint));
                    return Ok(def);
                }
                TokenKind::Plus
                | TokenKind::Amp
                | TokenKind::Minus
                | TokenKind::Arrow
                | TokenKind::Dot
                | TokenKind::Pipe
                    if self.tok.newline_before =>
                {
                    let msg = format!("a line cannot start with {}", self.found());
                    let hint = "a line break ends a relation or permission; put the operator at \
                                the end of the previous line, or wrap the expression in parentheses"
                        .to_string();
                    self.error_here(msg, Some(hint));
                    self.recover_member(true);
                }
                _ => {
                    let hint = match self.tok.kind {
                        TokenKind::Word => super::checker::suggest(
                            self.text(&self.tok),
                            ["relation", "permission"].into_iter(),
                        )
                        .map(|s| format!("did you mean `{s}`?")),
                        _ => None,
                    };
                    let msg = format!(
                        "expected `relation`, `permission` or `}}`, found {}",
                        self.found()
                    );
                    self.error_here(msg, hint);
                    self.recover_member(true);
                }
            }
        }
    }

    fn parse_relation(&mut self) -> PResult<RelationDecl> {
        self.depth = 0;
        let kw = self.bump();
        let name = self.expect_ident("a relation name after `relation`")?;
        if self.tok.kind == TokenKind::Equals {
            let msg = format!("expected `:` after `relation {}`, found `=`", name.name);
            let hint = "relations declare their subject types with `:`, e.g. `relation viewer: \
                        user`; computed sets are declared with `permission name = ...`"
                .to_string();
            return Err(self.error_here(msg, Some(hint)));
        }
        self.expect(
            TokenKind::Colon,
            &format!("`:` after `relation {}`", name.name),
            None,
        )?;
        let mut types = vec![self.parse_type_ref()?];
        while self.at_continuation(TokenKind::Pipe) {
            self.bump();
            types.push(self.parse_type_ref()?);
        }
        let hint = match self.tok.kind {
            TokenKind::Word if !self.tok.newline_before => {
                Some("separate subject types with `|`".to_string())
            }
            _ => Some(
                "start each relation and permission on its own line, or end it with `;`".into(),
            ),
        };
        self.expect_terminator("relation", hint)?;
        Ok(RelationDecl {
            name,
            doc: kw.doc,
            types,
        })
    }

    fn parse_type_ref(&mut self) -> PResult<TypeRef> {
        let subject_type = self.expect_ident("a subject type")?;
        let start = subject_type.span.start;
        let mut target = TypeTarget::Direct;
        if self.at_continuation(TokenKind::Hash) {
            self.bump();
            let rel =
                self.expect_ident(&format!("a relation name after `{}#`", subject_type.name))?;
            target = TypeTarget::Relation(rel);
            if self.at_continuation(TokenKind::Colon) {
                let msg = "a subject relation cannot be combined with a wildcard".to_string();
                let hint = format!(
                    "write either `{0}:*` (every `{0}`) or `{0}#relation`",
                    subject_type.name
                );
                return Err(self.error_here(msg, Some(hint)));
            }
        } else if self.at_continuation(TokenKind::Colon) {
            self.bump();
            if self.tok.kind != TokenKind::Star {
                let msg = format!(
                    "expected `*` after `{}:`, found {}",
                    subject_type.name,
                    self.found()
                );
                let hint = format!(
                    "`{0}:*` allows every `{0}`; specific objects are granted by relationships, \
                     not in the schema",
                    subject_type.name
                );
                return Err(self.error_here(msg, Some(hint)));
            }
            self.bump();
            target = TypeTarget::Wildcard;
            if self.at_continuation(TokenKind::Hash) {
                let msg = "a wildcard cannot have a subject relation".to_string();
                let hint = format!(
                    "write either `{0}:*` (every `{0}`) or `{0}#relation`",
                    subject_type.name
                );
                return Err(self.error_here(msg, Some(hint)));
            }
        }
        let mut caveat = None;
        let mut expiration = None;
        if self.tok.kind == TokenKind::Word
            && self.at_word("with")
            && (!self.tok.newline_before || self.depth > 0)
        {
            self.bump();
            if self.at_word("expiration") {
                expiration = Some(self.bump().span);
                if self.at_word("and") && !self.tok.newline_before {
                    let msg = "the caveat must come before `expiration`".to_string();
                    let hint = "write `with caveat_name and expiration`".to_string();
                    return Err(self.error_here(msg, Some(hint)));
                }
            } else {
                caveat = Some(self.expect_ident("a caveat name or `expiration` after `with`")?);
                if self.at_word("and") && !self.tok.newline_before {
                    self.bump();
                    if self.at_word("expiration") {
                        expiration = Some(self.bump().span);
                    } else {
                        let msg =
                            format!("expected `expiration` after `and`, found {}", self.found());
                        let hint =
                            "a subject type can have at most one caveat, optionally followed by \
                             `and expiration`"
                                .to_string();
                        return Err(self.error_here(msg, Some(hint)));
                    }
                }
            }
        }
        Ok(TypeRef {
            subject_type,
            target,
            caveat,
            expiration,
            span: start..self.prev_end,
        })
    }

    fn parse_permission(&mut self) -> PResult<PermissionDecl> {
        self.depth = 0;
        let kw = self.bump();
        let name = self.expect_ident("a permission name after `permission`")?;
        if self.tok.kind == TokenKind::Colon {
            let msg = format!("expected `=` after `permission {}`, found `:`", name.name);
            let hint = "permissions are computed: write `permission view = viewer + editor`; \
                        subject types are declared with `relation name: type`"
                .to_string();
            return Err(self.error_here(msg, Some(hint)));
        }
        self.expect(
            TokenKind::Equals,
            &format!("`=` after `permission {}`", name.name),
            None,
        )?;
        let expr = self.parse_expr()?;
        let hint = match self.tok.kind {
            TokenKind::Word | TokenKind::LParen if !self.tok.newline_before => {
                Some("combine terms with `+` (union), `&` (intersection) or `-` (exclusion)".into())
            }
            _ => Some(
                "start each relation and permission on its own line, or end it with `;`".into(),
            ),
        };
        self.expect_terminator("permission", hint)?;
        Ok(PermissionDecl {
            name,
            doc: kw.doc,
            expr,
        })
    }

    // ---- expressions ----------------------------------------------------------------

    /// A whole expression at one parenthesis level, checked for unparenthesised mixing.
    fn parse_expr(&mut self) -> PResult<Expr> {
        let e = self.parse_binary_level(0)?;
        self.warn_if_mixed(&e);
        Ok(e)
    }

    /// Levels, loosest first: 0 `-`, 1 `&`, 2 `+`; level 3 is a unary term.
    fn parse_binary_level(&mut self, level: usize) -> PResult<Expr> {
        let (op, kind) = match level {
            0 => (BinOp::Exclusion, TokenKind::Minus),
            1 => (BinOp::Intersection, TokenKind::Amp),
            2 => (BinOp::Union, TokenKind::Plus),
            _ => return self.parse_term(),
        };
        let first = self.parse_binary_level(level + 1)?;
        if !self.at_continuation(kind) {
            return Ok(first);
        }
        let mut operands = vec![first];
        while self.at_continuation(kind) {
            self.bump();
            operands.push(self.parse_binary_level(level + 1)?);
        }
        let start = operands.first().map_or(0, |e| e.span().start);
        let end = operands.last().map_or(0, |e| e.span().end);
        Ok(Expr::Binary {
            op,
            operands,
            span: start..end,
        })
    }

    fn parse_term(&mut self) -> PResult<Expr> {
        match self.tok.kind {
            TokenKind::Word if self.at_word("nil") => {
                let t = self.bump();
                if self.at_continuation(TokenKind::Arrow) || self.at_continuation(TokenKind::Dot) {
                    let msg = "`nil` cannot be the left side of an arrow".to_string();
                    return Err(self.error_here(msg, None));
                }
                Ok(Expr::Nil(t.span))
            }
            TokenKind::Word
                if self.tok.newline_before
                    && self.depth == 0
                    && matches!(
                        self.text(&self.tok),
                        "relation" | "permission" | "definition" | "caveat"
                    ) =>
            {
                // `permission p = a +` followed by the next statement: the expression was
                // left unfinished, which is what the author needs to hear.
                let msg = format!(
                    "expected a relation, a permission, `nil` or `(`, found `{}` on the next line",
                    self.text(&self.tok)
                );
                let hint = "the expression on the previous line ends with an operator; complete \
                            it or remove the operator"
                    .to_string();
                Err(self.error_here(msg, Some(hint)))
            }
            TokenKind::Word => {
                let t = self.bump();
                let left = Ident {
                    name: self.text(&t).to_string(),
                    span: t.span,
                };
                let arrow = if self.at_continuation(TokenKind::Arrow) {
                    self.bump();
                    let computed = self.expect_ident(&format!(
                        "a relation or permission name after `{}->`",
                        left.name
                    ))?;
                    Some((computed, false))
                } else if self.at_continuation(TokenKind::Dot) {
                    self.bump();
                    let all = if self.at_word("any") {
                        false
                    } else if self.at_word("all") {
                        true
                    } else {
                        let msg = format!(
                            "expected `any` or `all` after `{}.`, found {}",
                            left.name,
                            self.found()
                        );
                        let hint =
                            format!("`{0}.any(p)` (same as `{0}->p`) or `{0}.all(p)`", left.name);
                        return Err(self.error_here(msg, Some(hint)));
                    };
                    let which = if all { "all" } else { "any" };
                    self.bump();
                    let example = format!("write `{}.{which}(permission)`", left.name);
                    self.expect(
                        TokenKind::LParen,
                        &format!("`(` after `{}.{which}`", left.name),
                        Some(example.clone()),
                    )?;
                    let computed = self.expect_ident("a relation or permission name")?;
                    self.expect(TokenKind::RParen, "`)`", Some(example))?;
                    Some((computed, all))
                } else {
                    None
                };
                let Some((computed, all)) = arrow else {
                    return Ok(Expr::Ref(left));
                };
                if self.at_continuation(TokenKind::Arrow) || self.at_continuation(TokenKind::Dot) {
                    let msg = "arrows cannot be chained".to_string();
                    let hint = format!(
                        "define a permission on the types of `{}` that takes the next step, and \
                         point this arrow at it",
                        left.name
                    );
                    return Err(self.error_here(msg, Some(hint)));
                }
                let span = left.span.start..self.prev_end;
                Ok(Expr::Arrow {
                    tupleset: left,
                    computed,
                    all,
                    span,
                })
            }
            TokenKind::LParen => {
                let open = self.bump();
                if self.depth >= MAX_NESTING {
                    let msg = format!(
                        "expression is nested too deeply (more than {MAX_NESTING} levels of \
                         parentheses)"
                    );
                    self.push(
                        Severity::Error,
                        open.span,
                        msg,
                        Some("split the expression into several permissions".into()),
                    );
                    return Err(Reported);
                }
                self.depth += 1;
                let inner = self.parse_expr()?;
                if self.tok.kind != TokenKind::RParen {
                    let msg = format!("expected `)`, found {}", self.found());
                    let hint = format!(
                        "the `(` on line {} is never closed",
                        self.line_of(open.span.start)
                    );
                    return Err(self.error_here(msg, Some(hint)));
                }
                let close = self.bump();
                self.depth -= 1;
                Ok(Expr::Paren {
                    inner: Box::new(inner),
                    span: open.span.start..close.span.end,
                })
            }
            _ => {
                let msg = format!(
                    "expected a relation, a permission, `nil` or `(`, found {}",
                    self.found()
                );
                Err(self.error_here(msg, None))
            }
        }
    }

    /// Warns when one parenthesis level mixes different binary operators: the reference's
    /// precedence (`+` tighter than `&` tighter than `-`) surprises most readers.
    fn warn_if_mixed(&mut self, e: &Expr) {
        let Expr::Binary { span, .. } = e else {
            return;
        };
        let mut ops: Vec<BinOp> = Vec::new();
        collect_ops(e, &mut ops);
        if ops.len() < 2 {
            return;
        }
        let mut grouped = String::new();
        render_grouping(e, &mut grouped);
        let message =
            format!("operators are mixed without parentheses; this is read as `{grouped}`");
        let hint = "`+` binds tighter than `&`, and `&` tighter than `-` (so `a - b + c` means \
                    `a - (b + c)`); add parentheses to make the intended grouping explicit"
            .to_string();
        self.push(Severity::Warning, span.clone(), message, Some(hint));
    }

    // ---- caveats --------------------------------------------------------------------

    fn parse_caveat(&mut self) -> PResult<CaveatDecl> {
        self.depth = 0;
        let kw = self.bump();
        let name = self.expect_ident("a caveat name after `caveat`")?;
        self.expect(
            TokenKind::LParen,
            &format!("`(` after `caveat {}`", name.name),
            Some(
                "caveats declare typed parameters: `caveat name(param type, ...) { expression }`"
                    .into(),
            ),
        )?;
        let mut params = Vec::new();
        while self.tok.kind != TokenKind::RParen {
            let pname = self.expect_ident("a parameter name")?;
            if matches!(self.tok.kind, TokenKind::Comma | TokenKind::RParen) {
                let msg = format!("parameter `{}` has no type", pname.name);
                let hint = format!("write `{} type`, e.g. `{} string`", pname.name, pname.name);
                self.push(Severity::Error, pname.span, msg, Some(hint));
                return Err(Reported);
            }
            let ty = self.parse_type_expr()?;
            params.push(Param { name: pname, ty });
            match self.tok.kind {
                TokenKind::Comma => {
                    self.bump();
                }
                TokenKind::RParen => {}
                _ => {
                    let msg = format!(
                        "expected `,` or `)` after parameter `{}`, found {}",
                        params.last().map_or("", |p: &Param| p.name.name.as_str()),
                        self.found()
                    );
                    return Err(self.error_here(msg, None));
                }
            }
        }
        self.bump();
        if self.tok.kind != TokenKind::LBrace {
            let msg = format!(
                "expected `{{` to start the expression of caveat `{}`, found {}",
                name.name,
                self.found()
            );
            return Err(self.error_here(msg, None));
        }
        // The lexer stopped right after `{`: hand it the CEL body.
        let open_brace = self.tok.span.clone();
        let Some(body) = self.lexer.scan_cel_body(open_brace.end) else {
            self.push(
                Severity::Error,
                open_brace,
                format!("unterminated expression of caveat `{}`", name.name),
                Some("close the expression with `}`".into()),
            );
            self.tok = self.lexer.next_token();
            return Err(Reported);
        };
        self.prev_end = body.end + 1;
        self.tok = self.lexer.next_token();
        Ok(CaveatDecl {
            name,
            doc: kw.doc,
            params,
            body,
            open_brace,
        })
    }

    fn parse_type_expr(&mut self) -> PResult<TypeExpr> {
        let name = self.expect_ident("a parameter type")?;
        let start = name.span.start;
        let mut args = Vec::new();
        if self.tok.kind == TokenKind::Lt {
            let lt = self.bump();
            if self.depth >= MAX_NESTING {
                let msg =
                    format!("parameter type is nested too deeply (more than {MAX_NESTING} levels)");
                self.push(Severity::Error, lt.span, msg, None);
                return Err(Reported);
            }
            self.depth += 1;
            args.push(self.parse_type_expr()?);
            while self.tok.kind == TokenKind::Comma {
                self.bump();
                args.push(self.parse_type_expr()?);
            }
            self.expect(TokenKind::Gt, "`>`", None)?;
            self.depth -= 1;
        }
        Ok(TypeExpr {
            name,
            args,
            span: start..self.prev_end,
        })
    }
}

/// The distinct operators of one parenthesis level (not looking inside parentheses).
fn collect_ops(e: &Expr, ops: &mut Vec<BinOp>) {
    if let Expr::Binary { op, operands, .. } = e {
        if !ops.contains(op) {
            ops.push(*op);
        }
        for o in operands {
            collect_ops(o, ops);
        }
    }
}

/// Renders an expression with the implicit grouping of one level made explicit.
fn render_grouping(e: &Expr, out: &mut String) {
    match e {
        Expr::Nil(_) => out.push_str("nil"),
        Expr::Ref(i) => out.push_str(&i.name),
        Expr::Arrow {
            tupleset,
            computed,
            all,
            ..
        } => {
            if *all {
                out.push_str(&format!("{}.all({})", tupleset.name, computed.name));
            } else {
                out.push_str(&format!("{}->{}", tupleset.name, computed.name));
            }
        }
        Expr::Paren { inner, .. } => {
            out.push('(');
            render_grouping(inner, out);
            out.push(')');
        }
        Expr::Binary { op, operands, .. } => {
            for (i, o) in operands.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                    out.push_str(op.symbol());
                    out.push(' ');
                }
                if matches!(o, Expr::Binary { .. }) {
                    out.push('(');
                    render_grouping(o, out);
                    out.push(')');
                } else {
                    render_grouping(o, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> SchemaAst {
        let out = parse(src);
        let errors: Vec<_> = out
            .diagnostics
            .items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "unexpected errors: {errors:?}");
        out.ast
    }

    fn errors(src: &str) -> Vec<String> {
        parse(src)
            .diagnostics
            .items
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.message)
            .collect()
    }

    fn permission_expr(src: &str) -> Expr {
        let ast = parse_ok(src);
        let Some(Item::Definition(d)) = ast.items.into_iter().next() else {
            panic!("no definition")
        };
        match d.members.into_iter().last() {
            Some(Member::Permission(p)) => p.expr,
            other => panic!("expected a permission, got {other:?}"),
        }
    }

    fn grouping(src: &str) -> String {
        let mut s = String::new();
        render_grouping(&permission_expr(src), &mut s);
        s
    }

    #[test]
    fn precedence_matches_the_reference() {
        assert_eq!(
            grouping("definition d { permission p = a - b & c + d }"),
            "a - (b & (c + d))"
        );
        assert_eq!(
            grouping("definition d { permission p = a + b & c }"),
            "(a + b) & c"
        );
        assert_eq!(
            grouping("definition d { permission p = a & b - c + d->e }"),
            "(a & b) - (c + d->e)"
        );
        // Same-operator chains are one n-ary node, grouped left to right.
        let e = permission_expr("definition d { permission p = a - b - c }");
        let Expr::Binary { op, operands, .. } = e else {
            panic!()
        };
        assert_eq!(op, BinOp::Exclusion);
        assert_eq!(operands.len(), 3);
    }

    #[test]
    fn mixing_operators_warns_once_per_level() {
        let out = parse("definition d {\n permission p = a + b & (c - d + e) - f\n}");
        let warnings: Vec<_> = out
            .diagnostics
            .items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| d.message.clone())
            .collect();
        assert_eq!(
            warnings,
            vec![
                "operators are mixed without parentheses; this is read as `c - (d + e)`",
                "operators are mixed without parentheses; this is read as `((a + b) & (c - (d + e))) - f`",
            ]
        );
        let out = parse(
            "definition d {\n permission p = (a + b) & c - (d)\n permission q = a + b + c\n}",
        );
        let n = out
            .diagnostics
            .items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        assert_eq!(n, 1, "{:?}", out.diagnostics.items);
    }

    #[test]
    fn arrows_and_any_all() {
        let e = permission_expr("definition d { permission p = parent.all(view) }");
        assert!(matches!(e, Expr::Arrow { all: true, .. }));
        let e = permission_expr("definition d { permission p = parent.any(view) }");
        assert!(matches!(e, Expr::Arrow { all: false, .. }));
        assert_eq!(
            errors("definition d { permission p = a->b->c }"),
            vec!["arrows cannot be chained"]
        );
        assert_eq!(
            errors("definition d { permission p = a.some(b) }"),
            vec!["expected `any` or `all` after `a.`, found `some`"]
        );
    }

    #[test]
    fn line_breaks_end_statements_but_not_inside_parentheses() {
        parse_ok("definition d {\n permission p = a +\n   b\n permission q = (a\n + b)\n}");
        assert_eq!(
            errors("definition d {\n permission p = a\n   + b\n}"),
            vec!["a line cannot start with `+`"]
        );
        assert_eq!(
            errors("definition d { relation a: user relation b: user }"),
            vec!["expected the end of the relation, found `relation`"]
        );
        parse_ok("definition d { relation a: user; relation b: user; permission c = a + b; }");
    }

    #[test]
    fn subject_type_forms() {
        let ast = parse_ok(
            "definition d { relation r: user | group#member | user:* | user with c | user with expiration | user with c and expiration }",
        );
        let Item::Definition(d) = &ast.items[0] else {
            panic!()
        };
        let Member::Relation(r) = &d.members[0] else {
            panic!()
        };
        assert_eq!(r.types.len(), 6);
        assert!(matches!(r.types[1].target, TypeTarget::Relation(_)));
        assert!(matches!(r.types[2].target, TypeTarget::Wildcard));
        assert_eq!(
            r.types[3].caveat.as_ref().map(|c| c.name.as_str()),
            Some("c")
        );
        assert!(r.types[4].expiration.is_some() && r.types[4].caveat.is_none());
        assert!(r.types[5].expiration.is_some() && r.types[5].caveat.is_some());
        assert_eq!(
            errors("definition d { relation r: user:*#member }"),
            vec!["a wildcard cannot have a subject relation"]
        );
        assert_eq!(
            errors("definition d { relation r: user with expiration and c }"),
            vec!["the caveat must come before `expiration`"]
        );
    }

    #[test]
    fn unexpected_end_of_file_is_reported() {
        assert_eq!(
            errors("definition d {\n relation r: user"),
            vec!["unexpected end of file: definition `d` is missing its closing `}`"]
        );
        assert_eq!(
            errors("definition d { permission p = "),
            vec!["expected a relation, a permission, `nil` or `(`, found end of file"]
        );
        assert_eq!(
            errors("caveat c(a int) { a == 1 "),
            vec!["unterminated expression of caveat `c`"]
        );
        assert_eq!(
            errors("definition"),
            vec!["expected a definition name after `definition`, found end of file"]
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let depth = 100_000;
        let src = format!(
            "definition d {{ permission p = {}a{} }}",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let errs = errors(&src);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("expression is nested too deeply"));
        let src = format!(
            "caveat c(a {}int{}) {{ true }}",
            "list<".repeat(depth),
            ">".repeat(depth)
        );
        let errs = errors(&src);
        assert!(
            errs[0].starts_with("parameter type is nested too deeply"),
            "{errs:?}"
        );
        // Exactly at the limit is fine.
        let src = format!(
            "definition d {{ permission p = {}a{} }}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        parse_ok(&src);
    }

    #[test]
    fn long_flat_chains_do_not_nest() {
        let terms: Vec<String> = (0..20_000).map(|i| format!("r{i}")).collect();
        let src = format!("definition d {{ permission p = {} }}", terms.join(" + "));
        let Expr::Binary { operands, .. } = permission_expr(&src) else {
            panic!()
        };
        assert_eq!(operands.len(), 20_000);
    }

    #[test]
    fn every_syntax_error_is_reported_with_recovery() {
        let src = "definition a {\n relation r user\n permission p = +\n relation ok: user\n}\ndefintion b {}\ndefinition c { relation x: }\n";
        let errs = errors(src);
        assert_eq!(
            errs,
            vec![
                "expected `:` after `relation r`, found `user`",
                "expected a relation, a permission, `nil` or `(`, found `+`",
                "expected `definition`, `caveat` or `use`, found `defintion`",
                "expected a subject type, found `}`",
            ]
        );
        let ast = parse(src).ast;
        let Item::Definition(a) = &ast.items[0] else {
            panic!()
        };
        assert_eq!(a.members.len(), 1);
        assert_eq!(a.members[0].name().name, "ok");
    }

    #[test]
    fn caveat_declarations() {
        let src = "caveat ip_ok(ips list<string>, m map<list<int>>,\n  n int,) {\n  \"}\" in ips && n > 0\n}\ndefinition user {}";
        let ast = parse_ok(src);
        let Item::Caveat(c) = &ast.items[0] else {
            panic!()
        };
        assert_eq!(c.params.len(), 3);
        assert_eq!(c.params[1].ty.args[0].args[0].name.name, "int");
        assert_eq!(&src[c.body.clone()], "\n  \"}\" in ips && n > 0\n");
        assert!(matches!(ast.items[1], Item::Definition(_)));
    }

    #[test]
    fn missing_close_brace_before_next_definition() {
        let errs = errors("definition a {\n relation r: user\n\ndefinition b {}");
        assert_eq!(
            errs,
            vec!["expected `}` to close definition `a`, found `definition`"]
        );
    }
}
