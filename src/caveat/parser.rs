//! Recursive-descent parser for CEL, following the grammar's precedence:
//! `?:` < `||` < `&&` < relations (`== != < <= > >= in`) < `+ -` < `* / %` < unary < member.
//! Both the recursion of the parser and the height of the produced tree are capped, so that
//! hostile input yields an error instead of a stack overflow here or in later passes.

use super::Span;
use super::ast::{BinaryOp, Expr, ExprKind, MacroKind, UnaryOp};
use super::lexer::{Tok, Token, tokenize};

/// Maximum height of an expression tree (and of parenthesised nesting).
pub(crate) const MAX_DEPTH: u32 = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError {
    pub message: String,
    pub span: Span,
}

/// Parses a whole CEL expression.
pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src).map_err(|e| ParseError {
        message: e.message,
        span: e.span,
    })?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        prev_end: 0,
        nesting: 0,
    };
    if parser.peek() == &Tok::Eof {
        return Err(ParseError {
            message: "the caveat expression is empty".into(),
            span: parser.span(),
        });
    }
    let expr = parser.expr()?;
    if parser.peek() != &Tok::Eof {
        return Err(parser.unexpected("the end of the expression"));
    }
    Ok(expr)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    prev_end: usize,
    nesting: u32,
}

type PResult<T> = Result<T, ParseError>;

fn child_depth(kind: &ExprKind) -> u32 {
    let d = |e: &Expr| e.depth;
    let max_of = |es: &[Expr]| es.iter().map(|e| e.depth).max().unwrap_or(0);
    match kind {
        ExprKind::Null
        | ExprKind::Bool(_)
        | ExprKind::Int(_)
        | ExprKind::Uint(_)
        | ExprKind::Double(_)
        | ExprKind::String(_)
        | ExprKind::Bytes(_)
        | ExprKind::Ident(_) => 0,
        ExprKind::Select { operand, .. } | ExprKind::Has { operand, .. } => d(operand),
        ExprKind::Unary { operand, .. } => d(operand),
        ExprKind::Index { operand, index } => d(operand).max(d(index)),
        ExprKind::Call { target, args, .. } => target.as_deref().map_or(0, d).max(max_of(args)),
        ExprKind::List(items) | ExprKind::And(items) | ExprKind::Or(items) => max_of(items),
        ExprKind::Map(entries) => entries
            .iter()
            .map(|(k, v)| k.depth.max(v.depth))
            .max()
            .unwrap_or(0),
        ExprKind::Binary { lhs, rhs, .. } => d(lhs).max(d(rhs)),
        ExprKind::Cond {
            cond,
            then,
            otherwise,
        } => d(cond).max(d(then)).max(d(otherwise)),
        ExprKind::Comprehension {
            range,
            predicate,
            transform,
            ..
        } => d(range)
            .max(predicate.as_deref().map_or(0, d))
            .max(transform.as_deref().map_or(0, d)),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        // `tokenize` always ends with `Eof` and `advance` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn peek_at(&self, offset: usize) -> &Tok {
        &self.tokens[(self.pos + offset).min(self.tokens.len() - 1)].tok
    }

    fn span(&self) -> Span {
        self.tokens[self.pos.min(self.tokens.len() - 1)].span
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        if token.tok != Tok::Eof {
            self.pos += 1;
        }
        self.prev_end = token.span.end;
        token
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == tok {
            self.advance();
            true
        } else {
            false
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        ParseError {
            message: format!("expected {expected}, found {}", self.peek().describe()),
            span: self.span(),
        }
    }

    fn expect(&mut self, tok: &Tok, expected: &str) -> PResult<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn node(&self, kind: ExprKind, span: Span) -> PResult<Expr> {
        let depth = child_depth(&kind) + 1;
        if depth > MAX_DEPTH {
            return Err(ParseError {
                message: format!("expression is nested too deeply (the limit is {MAX_DEPTH})"),
                span,
            });
        }
        Ok(Expr { kind, span, depth })
    }

    fn expr(&mut self) -> PResult<Expr> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(ParseError {
                message: format!("expression is nested too deeply (the limit is {MAX_DEPTH})"),
                span: self.span(),
            });
        }
        let result = self.conditional();
        self.nesting -= 1;
        result
    }

    fn conditional(&mut self) -> PResult<Expr> {
        let start = self.span().start;
        let cond = self.or()?;
        if !self.eat(&Tok::Question) {
            return Ok(cond);
        }
        let then = self.or()?;
        self.expect(&Tok::Colon, "`:` of the conditional `?:`")?;
        let otherwise = self.expr()?;
        self.node(
            ExprKind::Cond {
                cond: Box::new(cond),
                then: Box::new(then),
                otherwise: Box::new(otherwise),
            },
            Span::new(start, self.prev_end),
        )
    }

    fn or(&mut self) -> PResult<Expr> {
        let start = self.span().start;
        let first = self.and()?;
        if self.peek() != &Tok::OrOr {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat(&Tok::OrOr) {
            items.push(self.and()?);
        }
        self.node(ExprKind::Or(items), Span::new(start, self.prev_end))
    }

    fn and(&mut self) -> PResult<Expr> {
        let start = self.span().start;
        let first = self.relation()?;
        if self.peek() != &Tok::AndAnd {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat(&Tok::AndAnd) {
            items.push(self.relation()?);
        }
        self.node(ExprKind::And(items), Span::new(start, self.prev_end))
    }

    fn binary_chain(
        &mut self,
        next: fn(&mut Self) -> PResult<Expr>,
        op_of: fn(&Tok) -> Option<BinaryOp>,
    ) -> PResult<Expr> {
        let start = self.span().start;
        let mut lhs = next(self)?;
        while let Some(op) = op_of(self.peek()) {
            self.advance();
            let rhs = next(self)?;
            lhs = self.node(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                Span::new(start, self.prev_end),
            )?;
        }
        Ok(lhs)
    }

    fn relation(&mut self) -> PResult<Expr> {
        self.binary_chain(Self::addition, |t| match t {
            Tok::EqEq => Some(BinaryOp::Eq),
            Tok::NotEq => Some(BinaryOp::Ne),
            Tok::Lt => Some(BinaryOp::Lt),
            Tok::Le => Some(BinaryOp::Le),
            Tok::Gt => Some(BinaryOp::Gt),
            Tok::Ge => Some(BinaryOp::Ge),
            Tok::In => Some(BinaryOp::In),
            _ => None,
        })
    }

    fn addition(&mut self) -> PResult<Expr> {
        self.binary_chain(Self::multiplication, |t| match t {
            Tok::Plus => Some(BinaryOp::Add),
            Tok::Minus => Some(BinaryOp::Sub),
            _ => None,
        })
    }

    fn multiplication(&mut self) -> PResult<Expr> {
        self.binary_chain(Self::unary, |t| match t {
            Tok::Star => Some(BinaryOp::Mul),
            Tok::Slash => Some(BinaryOp::Div),
            Tok::Percent => Some(BinaryOp::Rem),
            _ => None,
        })
    }

    fn unary(&mut self) -> PResult<Expr> {
        let (op, tok) = match self.peek() {
            Tok::Bang => (UnaryOp::Not, Tok::Bang),
            Tok::Minus => (UnaryOp::Neg, Tok::Minus),
            _ => return self.member(),
        };
        let mut starts = Vec::new();
        while self.peek() == &tok {
            starts.push(self.span().start);
            self.advance();
        }
        // `-9223372036854775808` is only expressible as a negated literal.
        let mut operand = match (op, self.peek(), self.peek_at(1)) {
            (UnaryOp::Neg, Tok::Int(v), next)
                if *v == 1u64 << 63 && !matches!(next, Tok::Dot | Tok::LBracket) =>
            {
                let token = self.advance();
                let start = starts.pop().unwrap_or(token.span.start);
                self.node(ExprKind::Int(i64::MIN), Span::new(start, token.span.end))?
            }
            _ => self.member()?,
        };
        while let Some(start) = starts.pop() {
            operand = self.node(
                ExprKind::Unary {
                    op,
                    operand: Box::new(operand),
                },
                Span::new(start, self.prev_end),
            )?;
        }
        Ok(operand)
    }

    fn member(&mut self) -> PResult<Expr> {
        let start = self.span().start;
        let mut expr = self.primary()?;
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.advance();
                    let (name, name_span) = self.ident("a field or method name after `.`")?;
                    if self.peek() == &Tok::LParen {
                        let args = self.call_args()?;
                        let span = Span::new(start, self.prev_end);
                        expr = self.method_or_macro(expr, name, name_span, args, span)?;
                    } else {
                        expr = self.node(
                            ExprKind::Select {
                                operand: Box::new(expr),
                                field: name,
                                field_span: name_span,
                            },
                            Span::new(start, self.prev_end),
                        )?;
                    }
                }
                Tok::LBracket => {
                    self.advance();
                    let index = self.expr()?;
                    self.expect(&Tok::RBracket, "`]`")?;
                    expr = self.node(
                        ExprKind::Index {
                            operand: Box::new(expr),
                            index: Box::new(index),
                        },
                        Span::new(start, self.prev_end),
                    )?;
                }
                Tok::LBrace if matches!(expr.kind, ExprKind::Ident(_)) => {
                    return Err(ParseError {
                        message: "message construction is not supported in caveats".into(),
                        span: self.span(),
                    });
                }
                _ => return Ok(expr),
            }
        }
    }

    fn ident(&mut self, expected: &str) -> PResult<(String, Span)> {
        if let Tok::Ident(name) = self.peek() {
            let name = name.clone();
            let span = self.advance().span;
            Ok((name, span))
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn call_args(&mut self) -> PResult<Vec<Expr>> {
        self.expect(&Tok::LParen, "`(`")?;
        let mut args = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat(&Tok::Comma) {
                continue;
            }
            self.expect(&Tok::RParen, "`,` or `)`")?;
            return Ok(args);
        }
    }

    fn method_or_macro(
        &mut self,
        target: Expr,
        name: String,
        name_span: Span,
        mut args: Vec<Expr>,
        span: Span,
    ) -> PResult<Expr> {
        let kind = match name.as_str() {
            "all" => MacroKind::All,
            "exists" => MacroKind::Exists,
            "exists_one" => MacroKind::ExistsOne,
            "map" => MacroKind::Map,
            "filter" => MacroKind::Filter,
            _ => {
                return self.node(
                    ExprKind::Call {
                        target: Some(Box::new(target)),
                        name,
                        name_span,
                        args,
                    },
                    span,
                );
            }
        };
        let arity_ok = match kind {
            MacroKind::Map => args.len() == 2 || args.len() == 3,
            _ => args.len() == 2,
        };
        if !arity_ok {
            let expected = if kind == MacroKind::Map {
                "2 or 3 arguments: a variable name, (a filter,) and a transform"
            } else {
                "2 arguments: a variable name and a predicate"
            };
            return Err(ParseError {
                message: format!(
                    "macro `{}` takes {expected}, found {}",
                    kind.name(),
                    args.len()
                ),
                span,
            });
        }
        let mut rest = args.split_off(1);
        let var_expr = args.remove(0);
        let ExprKind::Ident(var) = var_expr.kind else {
            return Err(ParseError {
                message: format!(
                    "the first argument of `{}` must be a variable name",
                    kind.name()
                ),
                span: var_expr.span,
            });
        };
        let last = rest.pop().map(Box::new);
        let first = rest.pop().map(Box::new);
        let (predicate, transform) = match kind {
            MacroKind::Map => (first, last),
            _ => (last, None),
        };
        self.node(
            ExprKind::Comprehension {
                kind,
                var,
                var_span: var_expr.span,
                range: Box::new(target),
                predicate,
                transform,
            },
            span,
        )
    }

    fn primary(&mut self) -> PResult<Expr> {
        let start = self.span().start;
        let token = self.advance();
        let span = token.span;
        let kind = match token.tok {
            Tok::Int(v) => match i64::try_from(v) {
                Ok(v) => ExprKind::Int(v),
                Err(_) => {
                    return Err(ParseError {
                        message: format!("integer literal `{v}` is out of range"),
                        span,
                    });
                }
            },
            Tok::Uint(v) => ExprKind::Uint(v),
            Tok::Double(v) => ExprKind::Double(v),
            Tok::Str(s) => ExprKind::String(s),
            Tok::Bytes(b) => ExprKind::Bytes(b),
            Tok::True => ExprKind::Bool(true),
            Tok::False => ExprKind::Bool(false),
            Tok::Null => ExprKind::Null,
            Tok::Dot => {
                // A leading dot names an identifier from the root scope; there are no
                // nested scopes here, so `.x` is `x`.
                let (name, name_span) = self.ident("an identifier after the leading `.`")?;
                return self.ident_or_call(name, name_span, start);
            }
            Tok::Ident(name) => return self.ident_or_call(name, span, start),
            Tok::LParen => {
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "`)`")?;
                return Ok(inner);
            }
            Tok::LBracket => {
                let mut items = Vec::new();
                while self.peek() != &Tok::RBracket {
                    items.push(self.expr()?);
                    if !self.eat(&Tok::Comma) {
                        break;
                    }
                }
                self.expect(&Tok::RBracket, "`,` or `]`")?;
                ExprKind::List(items)
            }
            Tok::LBrace => {
                let mut entries = Vec::new();
                while self.peek() != &Tok::RBrace {
                    let key = self.expr()?;
                    self.expect(&Tok::Colon, "`:` after a map key")?;
                    let value = self.expr()?;
                    entries.push((key, value));
                    if !self.eat(&Tok::Comma) {
                        break;
                    }
                }
                self.expect(&Tok::RBrace, "`,` or `}`")?;
                ExprKind::Map(entries)
            }
            other => {
                return Err(ParseError {
                    message: format!("expected an expression, found {}", other.describe()),
                    span,
                });
            }
        };
        self.node(kind, Span::new(start, self.prev_end))
    }

    fn ident_or_call(&mut self, name: String, name_span: Span, start: usize) -> PResult<Expr> {
        if self.peek() != &Tok::LParen {
            return self.node(ExprKind::Ident(name), name_span);
        }
        let mut args = self.call_args()?;
        let span = Span::new(start, self.prev_end);
        if name == "has" {
            let arg = match (args.pop(), args.is_empty()) {
                (Some(arg), true) => arg,
                _ => {
                    return Err(ParseError {
                        message: "macro `has` takes exactly one argument".into(),
                        span,
                    });
                }
            };
            let ExprKind::Select { operand, field, .. } = arg.kind else {
                return Err(ParseError {
                    message: "macro `has` needs a field selection, like `has(m.field)`".into(),
                    span: arg.span,
                });
            };
            return self.node(ExprKind::Has { operand, field }, span);
        }
        self.node(
            ExprKind::Call {
                target: None,
                name,
                name_span,
                args,
            },
            span,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Expr {
        parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"))
    }

    fn perr(src: &str) -> ParseError {
        parse(src).unwrap_err()
    }

    /// Renders the tree fully parenthesised, to check precedence and associativity.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Null => "null".into(),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Int(i) => i.to_string(),
            ExprKind::Uint(u) => format!("{u}u"),
            ExprKind::Double(d) => format!("{d:?}"),
            ExprKind::String(s) => format!("{s:?}"),
            ExprKind::Bytes(b) => format!("b{b:?}"),
            ExprKind::Ident(n) => n.clone(),
            ExprKind::Select { operand, field, .. } => format!("{}.{field}", show(operand)),
            ExprKind::Index { operand, index } => format!("{}[{}]", show(operand), show(index)),
            ExprKind::Call {
                target, name, args, ..
            } => {
                let args: Vec<_> = args.iter().map(show).collect();
                match target {
                    Some(t) => format!("{}.{name}({})", show(t), args.join(", ")),
                    None => format!("{name}({})", args.join(", ")),
                }
            }
            ExprKind::List(items) => {
                format!(
                    "[{}]",
                    items.iter().map(show).collect::<Vec<_>>().join(", ")
                )
            }
            ExprKind::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", show(k), show(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ExprKind::Unary { op, operand } => match op {
                UnaryOp::Not => format!("(!{})", show(operand)),
                UnaryOp::Neg => format!("(-{})", show(operand)),
            },
            ExprKind::Binary { op, lhs, rhs } => {
                format!("({} {} {})", show(lhs), op.symbol(), show(rhs))
            }
            ExprKind::And(items) => format!(
                "({})",
                items.iter().map(show).collect::<Vec<_>>().join(" && ")
            ),
            ExprKind::Or(items) => format!(
                "({})",
                items.iter().map(show).collect::<Vec<_>>().join(" || ")
            ),
            ExprKind::Cond {
                cond,
                then,
                otherwise,
            } => format!("({} ? {} : {})", show(cond), show(then), show(otherwise)),
            ExprKind::Has { operand, field } => format!("has({}.{field})", show(operand)),
            ExprKind::Comprehension {
                kind,
                var,
                range,
                predicate,
                transform,
                ..
            } => {
                let mut parts = vec![var.clone()];
                parts.extend(predicate.as_deref().map(show));
                parts.extend(transform.as_deref().map(show));
                format!("{}.{}({})", show(range), kind.name(), parts.join(", "))
            }
        }
    }

    #[test]
    fn precedence_and_associativity() {
        let cases = [
            ("a || b && c", "(a || (b && c))"),
            ("a && b || c && d", "((a && b) || (c && d))"),
            ("a || b || c", "(a || b || c)"),
            ("1 + 2 * 3 - 4", "((1 + (2 * 3)) - 4)"),
            ("a - b - c", "((a - b) - c)"),
            ("a < b == c", "((a < b) == c)"),
            ("x in [1, 2,]", "(x in [1, 2])"),
            ("a ? b : c ? d : e", "(a ? b : (c ? d : e))"),
            ("a || b ? c : d", "((a || b) ? c : d)"),
            ("!!a", "(!(!a))"),
            ("-a.b[0].c()", "(-a.b[0].c())"),
            ("-5", "(-5)"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("--9223372036854775808", "(--9223372036854775808)"),
            ("{'a': 1, 'b': 2,}", "{\"a\": 1, \"b\": 2}"),
            ("has(m.f) && .x", "(has(m.f) && x)"),
            ("l.map(x, x * 2)", "l.map(x, (x * 2))"),
            ("l.map(x, x > 0, x * 2)", "l.map(x, (x > 0), (x * 2))"),
            ("l.exists_one(v, v == 1)", "l.exists_one(v, (v == 1))"),
            ("matches(s, 'a+')", "matches(s, \"a+\")"),
            ("(a + b) * c", "((a + b) * c)"),
            ("[]", "[]"),
            ("{}", "{}"),
        ];
        for (src, want) in cases {
            assert_eq!(show(&p(src)), want, "{src}");
        }
    }

    #[test]
    fn spans_cover_subexpressions() {
        let e = p("  a.b + size(c)");
        assert_eq!(e.span, Span::new(2, 15));
        let ExprKind::Binary { lhs, rhs, .. } = &e.kind else {
            panic!("not binary")
        };
        assert_eq!(lhs.span, Span::new(2, 5));
        assert_eq!(rhs.span, Span::new(8, 15));
    }

    #[test]
    fn syntax_errors() {
        let e = perr("a +");
        assert!(
            e.message.contains("expected an expression"),
            "{}",
            e.message
        );
        assert_eq!(e.span, Span::new(3, 3));
        let e = perr("a b");
        assert!(e.message.contains("the end of the expression"));
        assert_eq!(e.span, Span::new(2, 3));
        assert!(perr("").message.contains("empty"));
        assert!(perr("(a").message.contains("`)`"));
        assert!(perr("a ? b").message.contains("`:`"));
        assert!(perr("f(a,)").message.contains("expected an expression"));
        assert!(perr("9223372036854775808").message.contains("out of range"));
        assert!(perr("has(x)").message.contains("field selection"));
        assert!(perr("l.all(x)").message.contains("2 arguments"));
        assert!(perr("l.all(x.y, true)").message.contains("variable name"));
        assert!(perr("Foo{a: 1}").message.contains("message construction"));
        assert!(perr("a.1").message.contains("field or method name"));
    }

    #[test]
    fn nesting_is_capped() {
        let deep_parens = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(perr(&deep_parens).message.contains("nested too deeply"));
        let long_sum = vec!["a"; 200].join(" + ");
        assert!(perr(&long_sum).message.contains("nested too deeply"));
        let nots = format!("{}a", "!".repeat(500));
        assert!(perr(&nots).message.contains("nested too deeply"));
        let lists = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(perr(&lists).message.contains("nested too deeply"));
        // Flattened logical chains stay shallow.
        let long_or = vec!["a"; 500].join(" || ");
        assert_eq!(p(&long_or).depth, 2);
        let ok = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        p(&ok);
    }
}
