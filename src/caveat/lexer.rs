//! CEL tokens: literals (with every string/bytes quoting form and escape), identifiers,
//! keywords and operators, each with its byte span in the expression text.

use super::Span;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An integer literal without `u` suffix; kept unsigned so `-9223372036854775808` can be
    /// formed by the parser (the sign is a separate token).
    Int(u64),
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    Ident(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Colon,
    Question,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Bang,
    Eof,
}

impl Tok {
    /// How the token is shown in "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Int(v) => format!("`{v}`"),
            Tok::Uint(v) => format!("`{v}u`"),
            Tok::Double(v) => format!("`{v}`"),
            Tok::Str(_) => "a string literal".into(),
            Tok::Bytes(_) => "a bytes literal".into(),
            Tok::Ident(name) => format!("`{name}`"),
            Tok::True => "`true`".into(),
            Tok::False => "`false`".into(),
            Tok::Null => "`null`".into(),
            Tok::In => "`in`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Colon => "`:`".into(),
            Tok::Question => "`?`".into(),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Percent => "`%`".into(),
            Tok::EqEq => "`==`".into(),
            Tok::NotEq => "`!=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::AndAnd => "`&&`".into(),
            Tok::OrOr => "`||`".into(),
            Tok::Bang => "`!`".into(),
            Tok::Eof => "the end of the expression".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// A lexical error: message and the span of the offending text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LexError {
    pub message: String,
    pub span: Span,
}

/// Words CEL reserves for future use; they cannot name parameters or variables.
const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Splits `src` into tokens; the last token is always `Eof`.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, LexError> {
    let mut lexer = Lexer {
        src,
        bytes: src.as_bytes(),
        pos: 0,
        after_operand: false,
    };
    let mut out = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let done = token.tok == Tok::Eof;
        lexer.after_operand = matches!(
            token.tok,
            Tok::Ident(_)
                | Tok::RParen
                | Tok::RBracket
                | Tok::RBrace
                | Tok::Int(_)
                | Tok::Uint(_)
                | Tok::Double(_)
                | Tok::Str(_)
                | Tok::Bytes(_)
                | Tok::True
                | Tok::False
                | Tok::Null
        );
        out.push(token);
        if done {
            return Ok(out);
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// After an operand, `.5` is a member access `.` followed by `5`, not a float.
    after_operand: bool,
}

fn err<T>(message: impl Into<String>, start: usize, end: usize) -> Result<T, LexError> {
    Err(LexError {
        message: message.into(),
        span: Span::new(start, end),
    })
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn skip_trivia(&mut self) {
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() {
                self.pos += 1;
            } else if b == b'/' && self.peek_at(1) == Some(b'/') {
                while let Some(c) = self.peek() {
                    if c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, LexError> {
        self.skip_trivia();
        let start = self.pos;
        let Some(b) = self.peek() else {
            return Ok(Token {
                tok: Tok::Eof,
                span: Span::new(start, start),
            });
        };
        let tok = match b {
            b'0'..=b'9' => return self.number(start),
            b'.' if !self.after_operand && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) => {
                return self.number(start);
            }
            b'\'' | b'"' => return self.string(start, false, false),
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                if let Some((raw, bytes, prefix_len)) = self.string_prefix() {
                    self.pos += prefix_len;
                    return self.string(start, raw, bytes);
                }
                return self.ident(start);
            }
            _ => {
                let two = (b, self.peek_at(1));
                let (tok, len) = match two {
                    (b'=', Some(b'=')) => (Tok::EqEq, 2),
                    (b'!', Some(b'=')) => (Tok::NotEq, 2),
                    (b'<', Some(b'=')) => (Tok::Le, 2),
                    (b'>', Some(b'=')) => (Tok::Ge, 2),
                    (b'&', Some(b'&')) => (Tok::AndAnd, 2),
                    (b'|', Some(b'|')) => (Tok::OrOr, 2),
                    (b'(', _) => (Tok::LParen, 1),
                    (b')', _) => (Tok::RParen, 1),
                    (b'[', _) => (Tok::LBracket, 1),
                    (b']', _) => (Tok::RBracket, 1),
                    (b'{', _) => (Tok::LBrace, 1),
                    (b'}', _) => (Tok::RBrace, 1),
                    (b'.', _) => (Tok::Dot, 1),
                    (b',', _) => (Tok::Comma, 1),
                    (b':', _) => (Tok::Colon, 1),
                    (b'?', _) => (Tok::Question, 1),
                    (b'+', _) => (Tok::Plus, 1),
                    (b'-', _) => (Tok::Minus, 1),
                    (b'*', _) => (Tok::Star, 1),
                    (b'/', _) => (Tok::Slash, 1),
                    (b'%', _) => (Tok::Percent, 1),
                    (b'<', _) => (Tok::Lt, 1),
                    (b'>', _) => (Tok::Gt, 1),
                    (b'!', _) => (Tok::Bang, 1),
                    (b'=', _) => {
                        return err("unexpected `=` (use `==` to compare)", start, start + 1);
                    }
                    (b'&', _) => return err("unexpected `&` (use `&&`)", start, start + 1),
                    (b'|', _) => return err("unexpected `|` (use `||`)", start, start + 1),
                    _ => {
                        let ch = self.src[start..].chars().next().unwrap_or('\u{fffd}');
                        return err(
                            format!("unexpected character `{ch}`"),
                            start,
                            start + ch.len_utf8(),
                        );
                    }
                };
                self.pos += len;
                tok
            }
        };
        Ok(Token {
            tok,
            span: Span::new(start, self.pos),
        })
    }

    /// Recognises `r`, `b`, `rb`, `br` (any case) directly followed by a quote.
    fn string_prefix(&self) -> Option<(bool, bool, usize)> {
        let lower = |o: usize| self.peek_at(o).map(|c| c.to_ascii_lowercase());
        let is_quote = |o: usize| matches!(self.peek_at(o), Some(b'\'' | b'"'));
        match (lower(0), lower(1)) {
            (Some(b'r'), Some(b'b')) | (Some(b'b'), Some(b'r')) if is_quote(2) => {
                Some((true, true, 2))
            }
            (Some(b'r'), _) if is_quote(1) => Some((true, false, 1)),
            (Some(b'b'), _) if is_quote(1) => Some((false, true, 1)),
            _ => None,
        }
    }

    fn ident(&mut self, start: usize) -> Result<Token, LexError> {
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.pos += 1;
        }
        let word = &self.src[start..self.pos];
        let tok = match word {
            "true" => Tok::True,
            "false" => Tok::False,
            "null" => Tok::Null,
            "in" => Tok::In,
            _ if RESERVED.contains(&word) => {
                return err(
                    format!("`{word}` is a reserved word in CEL"),
                    start,
                    self.pos,
                );
            }
            _ => Tok::Ident(word.to_string()),
        };
        Ok(Token {
            tok,
            span: Span::new(start, self.pos),
        })
    }

    fn digits(&mut self, hex: bool) {
        while self.peek().is_some_and(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                c.is_ascii_digit()
            }
        }) {
            self.pos += 1;
        }
    }

    fn number(&mut self, start: usize) -> Result<Token, LexError> {
        // Hexadecimal integers.
        if self.peek() == Some(b'0') && matches!(self.peek_at(1), Some(b'x' | b'X')) {
            self.pos += 2;
            let digits_start = self.pos;
            self.digits(true);
            if self.pos == digits_start {
                return err("hexadecimal literal needs digits", start, self.pos);
            }
            let value = u64::from_str_radix(&self.src[digits_start..self.pos], 16);
            return self.finish_int(start, value.ok());
        }
        self.digits(false);
        let mut is_float = false;
        if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            self.pos += 1;
            self.digits(false);
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some(b'+' | b'-')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                is_float = true;
                self.pos += 1 + sign;
                self.digits(false);
            }
        }
        if is_float {
            let text = &self.src[start..self.pos];
            let value: f64 = match text.parse() {
                Ok(v) => v,
                Err(_) => return err(format!("invalid number `{text}`"), start, self.pos),
            };
            self.reject_trailing_ident(start)?;
            return Ok(Token {
                tok: Tok::Double(value),
                span: Span::new(start, self.pos),
            });
        }
        let value = self.src[start..self.pos].parse::<u64>().ok();
        self.finish_int(start, value)
    }

    fn finish_int(&mut self, start: usize, value: Option<u64>) -> Result<Token, LexError> {
        let unsigned = matches!(self.peek(), Some(b'u' | b'U'));
        if unsigned {
            self.pos += 1;
        }
        self.reject_trailing_ident(start)?;
        let Some(value) = value else {
            return err(
                format!(
                    "integer literal `{}` is out of range",
                    &self.src[start..self.pos]
                ),
                start,
                self.pos,
            );
        };
        let tok = if unsigned {
            Tok::Uint(value)
        } else {
            Tok::Int(value)
        };
        Ok(Token {
            tok,
            span: Span::new(start, self.pos),
        })
    }

    /// `12abc` is one malformed token, not `12` followed by `abc`.
    fn reject_trailing_ident(&mut self, start: usize) -> Result<(), LexError> {
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
            {
                self.pos += 1;
            }
            return err(
                format!("invalid number `{}`", &self.src[start..self.pos]),
                start,
                self.pos,
            );
        }
        Ok(())
    }

    fn string(&mut self, start: usize, raw: bool, bytes: bool) -> Result<Token, LexError> {
        let Some(quote) = self.peek() else {
            return err("unterminated string literal", start, self.pos);
        };
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return err("unterminated string literal", start, self.pos);
            };
            if c == quote {
                if !triple {
                    self.pos += 1;
                    break;
                }
                if self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote) {
                    self.pos += 3;
                    break;
                }
            }
            if !triple && (c == b'\n' || c == b'\r') {
                return err(
                    "newline in string literal (use a triple-quoted string)",
                    start,
                    self.pos,
                );
            }
            if c == b'\\' && !raw {
                self.escape(&mut buf, bytes)?;
                continue;
            }
            buf.push(c);
            self.pos += 1;
        }
        let span = Span::new(start, self.pos);
        if bytes {
            return Ok(Token {
                tok: Tok::Bytes(buf),
                span,
            });
        }
        match String::from_utf8(buf) {
            Ok(s) => Ok(Token {
                tok: Tok::Str(s),
                span,
            }),
            // Escapes only push valid UTF-8 in string mode and the source is a &str.
            Err(_) => err("string literal is not valid UTF-8", start, self.pos),
        }
    }

    fn hex_digits(&mut self, count: usize, esc_start: usize) -> Result<u32, LexError> {
        let digits = self.src.get(self.pos..self.pos + count);
        match digits.and_then(|d| {
            d.bytes()
                .all(|c| c.is_ascii_hexdigit())
                .then(|| u32::from_str_radix(d, 16).ok())
                .flatten()
        }) {
            Some(v) => {
                self.pos += count;
                Ok(v)
            }
            None => {
                // The span covers what should have been the digits, ending on a character
                // boundary even when a multi-byte character follows the escape.
                let mut end = (self.pos + count).min(self.bytes.len());
                while !self.src.is_char_boundary(end) {
                    end -= 1;
                }
                err(
                    format!("escape needs {count} hexadecimal digits"),
                    esc_start,
                    end,
                )
            }
        }
    }

    fn push_code_point(
        buf: &mut Vec<u8>,
        cp: u32,
        start: usize,
        end: usize,
    ) -> Result<(), LexError> {
        match char::from_u32(cp) {
            Some(ch) => {
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                Ok(())
            }
            None => err(
                format!("escape `\\u{{{cp:x}}}` is not a valid code point"),
                start,
                end,
            ),
        }
    }

    fn escape(&mut self, buf: &mut Vec<u8>, bytes: bool) -> Result<(), LexError> {
        let esc_start = self.pos;
        self.pos += 1; // the backslash
        let Some(c) = self.peek() else {
            return err("unterminated escape sequence", esc_start, self.pos);
        };
        self.pos += 1;
        let simple = match c {
            b'\\' => Some(b'\\'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            b'`' => Some(b'`'),
            b'?' => Some(b'?'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            _ => None,
        };
        if let Some(b) = simple {
            buf.push(b);
            return Ok(());
        }
        match c {
            b'x' | b'X' => {
                let v = self.hex_digits(2, esc_start)?;
                if bytes {
                    buf.push(v as u8);
                    Ok(())
                } else {
                    Self::push_code_point(buf, v, esc_start, self.pos)
                }
            }
            b'u' => {
                let v = self.hex_digits(4, esc_start)?;
                Self::push_code_point(buf, v, esc_start, self.pos)
            }
            b'U' => {
                let v = self.hex_digits(8, esc_start)?;
                Self::push_code_point(buf, v, esc_start, self.pos)
            }
            b'0'..=b'3' => {
                let rest = self.src.get(self.pos..self.pos + 2);
                let Some(rest) = rest.filter(|r| r.bytes().all(|d| (b'0'..=b'7').contains(&d)))
                else {
                    return err("octal escape needs three octal digits", esc_start, self.pos);
                };
                let value = u32::from(c - b'0') * 64
                    + u32::from(rest.as_bytes()[0] - b'0') * 8
                    + u32::from(rest.as_bytes()[1] - b'0');
                self.pos += 2;
                if bytes {
                    buf.push(value as u8);
                    Ok(())
                } else {
                    Self::push_code_point(buf, value, esc_start, self.pos)
                }
            }
            _ => {
                let ch = self.src[esc_start + 1..]
                    .chars()
                    .next()
                    .unwrap_or('\u{fffd}');
                err(
                    format!("unknown escape sequence `\\{ch}`"),
                    esc_start,
                    esc_start + 1 + ch.len_utf8(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn lex_err(src: &str) -> LexError {
        tokenize(src).unwrap_err()
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("1 1u 0x1F 0XffU 1.5 1e3 2E-2 18446744073709551615u"),
            vec![
                Tok::Int(1),
                Tok::Uint(1),
                Tok::Int(31),
                Tok::Uint(255),
                Tok::Double(1.5),
                Tok::Double(1000.0),
                Tok::Double(0.02),
                Tok::Uint(u64::MAX),
                Tok::Eof
            ]
        );
        assert_eq!(toks(".5"), vec![Tok::Double(0.5), Tok::Eof]);
        assert_eq!(toks("-.5"), vec![Tok::Minus, Tok::Double(0.5), Tok::Eof]);
        assert!(
            lex_err("18446744073709551616")
                .message
                .contains("out of range")
        );
        assert_eq!(lex_err("12abc").span, Span::new(0, 5));
        assert!(lex_err("0x").message.contains("digits"));
    }

    #[test]
    fn member_access_on_number_is_not_a_float() {
        assert_eq!(
            toks("a.b"),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(toks(r#""a\nb""#), vec![Tok::Str("a\nb".into()), Tok::Eof]);
        assert_eq!(toks(r"'it\'s'"), vec![Tok::Str("it's".into()), Tok::Eof]);
        assert_eq!(
            toks(r#""\x41\u00e9\U0001F600\101\a\v\?\`""#),
            vec![Tok::Str("Aé😀A\u{7}\u{b}?`".into()), Tok::Eof]
        );
        assert_eq!(toks(r"r'\d+'"), vec![Tok::Str(r"\d+".into()), Tok::Eof]);
        assert_eq!(toks(r#"R"\n""#), vec![Tok::Str(r"\n".into()), Tok::Eof]);
        assert_eq!(
            toks("'''a\n'b'\n'''"),
            vec![Tok::Str("a\n'b'\n".into()), Tok::Eof]
        );
        assert_eq!(
            toks(r#""""x"y""""#),
            vec![Tok::Str("x\"y".into()), Tok::Eof]
        );
        assert_eq!(
            toks(r#"b"\xff\377é""#),
            vec![Tok::Bytes(vec![0xff, 0xff, 0xc3, 0xa9]), Tok::Eof]
        );
        assert_eq!(toks(r"rb'\x'"), vec![Tok::Bytes(br"\x".to_vec()), Tok::Eof]);
        assert_eq!(toks(r"BR'\x'"), vec![Tok::Bytes(br"\x".to_vec()), Tok::Eof]);
    }

    #[test]
    fn string_errors_have_spans() {
        let e = lex_err("x == 'abc");
        assert!(e.message.contains("unterminated"));
        assert_eq!(e.span.start, 5);
        let e = lex_err(r"'a\qb'");
        assert!(e.message.contains(r"\q"), "{}", e.message);
        assert_eq!(e.span, Span::new(2, 4));
        assert!(lex_err("'a\nb'").message.contains("newline"));
        assert!(lex_err(r"'\ud800'").message.contains("code point"));
        assert!(lex_err(r"'\x4'").message.contains("hexadecimal"));
        assert!(lex_err(r"'\400'").message.contains("unknown escape"));
    }

    #[test]
    fn operators_comments_keywords() {
        assert_eq!(
            toks("a<=b // comment\n&& !c in d != null"),
            vec![
                Tok::Ident("a".into()),
                Tok::Le,
                Tok::Ident("b".into()),
                Tok::AndAnd,
                Tok::Bang,
                Tok::Ident("c".into()),
                Tok::In,
                Tok::Ident("d".into()),
                Tok::NotEq,
                Tok::Null,
                Tok::Eof
            ]
        );
        let e = lex_err("a = b");
        assert_eq!(e.span, Span::new(2, 3));
        assert!(e.message.contains("=="));
        assert!(lex_err("if").message.contains("reserved"));
        assert!(lex_err("a # b").message.contains("`#`"));
        assert!(lex_err("a ∈ b").message.contains("`∈`"));
    }
}
