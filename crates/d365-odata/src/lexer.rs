//! Tokenizer for OData expressions, modelled on ODataLib's `ExpressionLexer`: lazy, one token
//! of look-ahead, arbitrary whitespace between tokens, positions in bytes.

use crate::ast::{Literal, NumberKind};
use crate::datetime::{guid_at, looks_like_date, parse_date, parse_dto};
use crate::error::{self, ErrorKind, ParseError};
use crate::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// Identifier, possibly dotted (`Microsoft.Dynamics.CRM.In`), possibly `$`-prefixed.
    Ident(String),
    Lit(Literal),
    Array(Vec<Literal>),
    /// `@name` (text includes the `@`).
    Alias(String),
    LParen,
    RParen,
    Comma,
    Slash,
    Colon,
    Equals,
    Minus,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn ident(&self) -> Option<&str> {
        match &self.tok {
            Tok::Ident(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_ident(&self, kw: &str) -> bool {
        self.ident() == Some(kw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliasMode {
    Allowed,
    /// Inside `$expand(...)`: Dataverse does not support parameter aliases there.
    ForbiddenInExpand,
}

pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

pub(crate) fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ch(s: &str, i: usize) -> Option<char> {
    s.get(i..)?.chars().next()
}

/// Builds a number literal from its text (`-`? digits [`.` digits] [`e` [sign] digits] [suffix]).
/// `None` when an explicit `L` suffix meets a value that is not an `i64`.
pub(crate) fn number_literal(text: &str, has_dot: bool, has_exp: bool, suffix: Option<char>) -> Option<Literal> {
    let number = |kind| Some(Literal::Number { text: text.to_string(), kind });
    match suffix {
        Some('l' | 'L') => {
            if has_dot || has_exp {
                return None;
            }
            text[..text.len() - 1].parse().ok().map(Literal::Int)
        }
        Some('m' | 'M') => number(NumberKind::Decimal),
        Some('d' | 'D') => number(NumberKind::Double),
        Some('f' | 'F') => number(NumberKind::Single),
        _ if has_exp => number(NumberKind::Double),
        _ if has_dot => number(NumberKind::Decimal),
        _ => match text.parse::<i64>() {
            Ok(i) => Some(Literal::Int(i)),
            Err(_) => number(NumberKind::Decimal),
        },
    }
}

/// Scans a number at `i` (which holds `-` or a digit). Returns the literal and its end.
fn scan_number(s: &str, i: usize) -> Result<(Literal, usize), ParseError> {
    let b = s.as_bytes();
    let mut j = i;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    let mut has_dot = false;
    let mut has_exp = false;
    if b.get(j) == Some(&b'.') {
        has_dot = true;
        j += 1;
        if !b.get(j).is_some_and(u8::is_ascii_digit) {
            return Err(error::digit_expected(s, j));
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        has_exp = true;
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if !b.get(j).is_some_and(u8::is_ascii_digit) {
            return Err(error::digit_expected(s, j));
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    let suffix = match b.get(j) {
        Some(c @ (b'm' | b'M' | b'd' | b'D' | b'l' | b'L' | b'f' | b'F')) => {
            j += 1;
            Some(*c as char)
        }
        _ => None,
    };
    let text = &s[i..j];
    match number_literal(text, has_dot, has_exp, suffix) {
        Some(l) => Ok((l, j)),
        None => Err(error::unrecognized_literal(s, i, "Edm.Int64", text)),
    }
}

/// Negates a number literal as ODataLib does for `- 5` (the sign is glued onto the text).
/// `None` when `lit` is not a non-negative number.
pub(crate) fn negate_number(lit: &Literal) -> Option<Literal> {
    let text = match lit {
        Literal::Int(i) if *i >= 0 => i.to_string(),
        Literal::Number { text, .. } if !text.starts_with('-') => text.clone(),
        _ => return None,
    };
    match text.as_str() {
        "INF" | "NaN" => {
            return Some(Literal::Number { text: format!("-{text}"), kind: NumberKind::Double });
        }
        _ => {}
    }
    let neg = format!("-{text}");
    match scan_number(&neg, 0) {
        Ok((l, end)) if end == neg.len() => Some(l),
        _ => None,
    }
}

/// Extent of a date-like literal: up to `,`, `)`, whitespace or the end (ODataLib's rule).
fn literal_extent(s: &str, i: usize) -> usize {
    s[i..].char_indices().find(|(_, c)| *c == ',' || *c == ')' || c.is_whitespace()).map_or(s.len(), |(k, _)| i + k)
}

/// Scans a `'…'` literal starting at the quote at `q`; `''` is an escaped quote.
/// Returns the unescaped value and the end offset, or `None` when unterminated.
fn scan_quoted(s: &str, q: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut j = q + 1;
    loop {
        let k = s[j..].find('\'')?;
        out.push_str(&s[j..j + k]);
        j += k + 1;
        if s.as_bytes().get(j) == Some(&b'\'') {
            out.push('\'');
            j += 1;
        } else {
            return Some((out, j));
        }
    }
}

pub(crate) struct Lexer<'a> {
    pub input: &'a str,
    pos: usize,
    pub cur: Token,
    alias_mode: AliasMode,
}

impl<'a> Lexer<'a> {
    pub fn new(input: &'a str, alias_mode: AliasMode) -> Result<Self, ParseError> {
        let mut lx = Lexer { input, pos: 0, cur: Token { tok: Tok::End, start: 0, end: 0 }, alias_mode };
        lx.advance()?;
        Ok(lx)
    }

    /// Moves to the next token.
    pub fn advance(&mut self) -> Result<(), ParseError> {
        let t = self.lex_at(self.pos)?;
        self.pos = t.end;
        self.cur = t;
        Ok(())
    }

    /// The token after the current one, without consuming it.
    pub fn peek(&self) -> Result<Token, ParseError> {
        self.lex_at(self.pos)
    }

    fn lex_at(&self, mut i: usize) -> Result<Token, ParseError> {
        let s = self.input;
        while let Some(c) = ch(s, i).filter(|c| c.is_whitespace()) {
            i += c.len_utf8();
        }
        let start = i;
        let Some(c) = ch(s, i) else {
            return Ok(Token { tok: Tok::End, start, end: start });
        };
        let tok = |tok, end| Ok(Token { tok, start, end });
        match c {
            '(' => tok(Tok::LParen, i + 1),
            ')' => tok(Tok::RParen, i + 1),
            ',' => tok(Tok::Comma, i + 1),
            '/' => tok(Tok::Slash, i + 1),
            ':' => tok(Tok::Colon, i + 1),
            '=' => tok(Tok::Equals, i + 1),
            '-' => {
                if ch(s, i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    let (l, end) = scan_number(s, i)?;
                    return tok(Tok::Lit(l), end);
                }
                if s[i + 1..].starts_with("INF") && !ch(s, i + 4).is_some_and(is_ident_continue) {
                    return tok(Tok::Lit(Literal::Number { text: "-INF".into(), kind: NumberKind::Double }), i + 4);
                }
                tok(Tok::Minus, i + 1)
            }
            '\'' => match scan_quoted(s, i) {
                Some((v, end)) => tok(Tok::Lit(Literal::String(v)), end),
                None => Err(error::unterminated_string(s)),
            },
            '[' => {
                let (items, end) = json::parse_array(s, i)?;
                tok(Tok::Array(items), end)
            }
            '@' => self.lex_alias(i),
            c if c.is_ascii_digit() || is_ident_start(c) => {
                if let Some(end) = guid_at(s, i)
                    && ch(s, end).is_none_or(|d| d == ',' || d == ')' || d.is_whitespace())
                {
                    return tok(Tok::Lit(Literal::Guid(s[i..end].to_ascii_lowercase())), end);
                }
                if c.is_ascii_digit() {
                    if looks_like_date(&s.as_bytes()[i..]) {
                        return self.lex_date(i);
                    }
                    let (l, end) = scan_number(s, i)?;
                    return tok(Tok::Lit(l), end);
                }
                self.lex_ident(i)
            }
            c => Err(error::invalid_char(s, i, c)),
        }
    }

    fn lex_date(&self, i: usize) -> Result<Token, ParseError> {
        let s = self.input;
        let end = literal_extent(s, i);
        let text = &s[i..end];
        let lit = if s.as_bytes().get(i + 10) == Some(&b'T') {
            parse_dto(text)
                .map(Literal::DateTimeOffset)
                .ok_or_else(|| error::unrecognized_literal(s, i, "Edm.DateTimeOffset", text))?
        } else {
            parse_date(text).map(Literal::Date).ok_or_else(|| error::unrecognized_literal(s, i, "Edm.Date", text))?
        };
        Ok(Token { tok: Tok::Lit(lit), start: i, end })
    }

    fn lex_alias(&self, i: usize) -> Result<Token, ParseError> {
        let s = self.input;
        let Some(c) = ch(s, i + 1) else {
            return Err(error::syntax(s, s.len()));
        };
        if !is_ident_start(c) {
            return Err(error::invalid_char(s, i + 1, c));
        }
        let mut j = i + 1 + c.len_utf8();
        while let Some(d) = ch(s, j).filter(|d| is_ident_continue(*d)) {
            j += d.len_utf8();
        }
        let name = &s[i..j];
        if self.alias_mode == AliasMode::ForbiddenInExpand {
            let p = error::utf16_pos(s, i);
            return Err(ParseError::new(
                ErrorKind::Unsupported,
                s,
                i,
                format!("Parameter alias '{name}' at position {p} in '{s}' is not supported inside $expand."),
            ));
        }
        Ok(Token { tok: Tok::Alias(name.to_string()), start: i, end: j })
    }

    fn lex_ident(&self, i: usize) -> Result<Token, ParseError> {
        let s = self.input;
        let mut j = i;
        loop {
            // one identifier part
            if let Some(c) = ch(s, j) {
                j += c.len_utf8();
            }
            while let Some(d) = ch(s, j).filter(|d| is_ident_continue(*d)) {
                j += d.len_utf8();
            }
            // `.ident` continues a qualified name
            if ch(s, j) == Some('.') && ch(s, j + 1).is_some_and(is_ident_start) {
                j += 1;
                continue;
            }
            break;
        }
        let name = &s[i..j];
        if ch(s, j) == Some('\'') {
            return self.lex_typed(i, j);
        }
        let tok = match name {
            "true" => Tok::Lit(Literal::Bool(true)),
            "false" => Tok::Lit(Literal::Bool(false)),
            "null" => Tok::Lit(Literal::Null),
            "INF" | "NaN" => Tok::Lit(Literal::Number { text: name.to_string(), kind: NumberKind::Double }),
            _ => Tok::Ident(name.to_string()),
        };
        Ok(Token { tok, start: i, end: j })
    }

    /// `name'value'`: enum members (`Ns.Type'Member'`) and `duration'…'`.
    fn lex_typed(&self, i: usize, q: usize) -> Result<Token, ParseError> {
        let s = self.input;
        let type_name = &s[i..q];
        if type_name.eq_ignore_ascii_case("null") {
            // typed nulls are not supported (ODataLib)
            return Err(error::syntax(s, q));
        }
        let Some((value, end)) = scan_quoted(s, q) else {
            return Err(error::unterminated_literal(s));
        };
        let lit = if type_name.eq_ignore_ascii_case("duration") {
            Literal::Duration(value)
        } else if type_name.contains('.') {
            Literal::Enum { type_name: type_name.to_string(), value }
        } else {
            return Err(error::unrecognized_literal(s, i, type_name, &s[i..end]));
        };
        Ok(Token { tok: Tok::Lit(lit), start: i, end })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Result<Vec<Tok>, ParseError> {
        let mut lx = Lexer::new(s, AliasMode::Allowed)?;
        let mut out = vec![];
        while lx.cur.tok != Tok::End {
            out.push(lx.cur.tok.clone());
            lx.advance()?;
        }
        Ok(out)
    }

    fn one(s: &str) -> Tok {
        let v = toks(s).unwrap();
        assert_eq!(v.len(), 1, "{s:?} → {v:?}");
        v.into_iter().next().unwrap()
    }

    fn num(text: &str, kind: NumberKind) -> Tok {
        Tok::Lit(Literal::Number { text: text.into(), kind })
    }

    #[test]
    fn numbers() {
        assert_eq!(one("42"), Tok::Lit(Literal::Int(42)));
        assert_eq!(one("-42"), Tok::Lit(Literal::Int(-42)));
        assert_eq!(one("42L"), Tok::Lit(Literal::Int(42)));
        assert_eq!(one("9223372036854775807"), Tok::Lit(Literal::Int(i64::MAX)));
        assert_eq!(one("-9223372036854775808"), Tok::Lit(Literal::Int(i64::MIN)));
        assert_eq!(one("9223372036854775808"), num("9223372036854775808", NumberKind::Decimal));
        assert_eq!(one("1.5"), num("1.5", NumberKind::Decimal));
        assert_eq!(one("-1.5"), num("-1.5", NumberKind::Decimal));
        assert_eq!(one("1.5m"), num("1.5m", NumberKind::Decimal));
        assert_eq!(one("1.5M"), num("1.5M", NumberKind::Decimal));
        assert_eq!(one("1.5d"), num("1.5d", NumberKind::Double));
        assert_eq!(one("1.5f"), num("1.5f", NumberKind::Single));
        assert_eq!(one("1e10"), num("1e10", NumberKind::Double));
        assert_eq!(one("1.5E-3"), num("1.5E-3", NumberKind::Double));
        assert_eq!(one("2e+3"), num("2e+3", NumberKind::Double));
        assert_eq!(one("INF"), num("INF", NumberKind::Double));
        assert_eq!(one("-INF"), num("-INF", NumberKind::Double));
        assert_eq!(one("NaN"), num("NaN", NumberKind::Double));
        assert_eq!(toks("-INFO").unwrap(), vec![Tok::Minus, Tok::Ident("INFO".into())]);
        assert_eq!(toks("5abc").unwrap(), vec![Tok::Lit(Literal::Int(5)), Tok::Ident("abc".into())]);
    }

    #[test]
    fn number_errors() {
        let e = toks("a eq 1.").unwrap_err();
        assert_eq!(e.message, "A digit was expected at position 7 in 'a eq 1.'.");
        let e = toks("1.x").unwrap_err();
        assert_eq!(e.position, 2);
        let e = toks("1e").unwrap_err();
        assert_eq!(e.message, "A digit was expected at position 2 in '1e'.");
        let e = toks("1e+").unwrap_err();
        assert_eq!(e.position, 3);
        let e = toks("1.5L").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidLiteral);
        let e = toks("99999999999999999999L").unwrap_err();
        assert_eq!(
            e.message,
            "Unrecognized 'Edm.Int64' literal '99999999999999999999L' at '0' in '99999999999999999999L'."
        );
    }

    #[test]
    fn negation_folding() {
        assert_eq!(negate_number(&Literal::Int(5)), Some(Literal::Int(-5)));
        assert_eq!(
            negate_number(&Literal::Number { text: "9223372036854775808".into(), kind: NumberKind::Decimal }),
            Some(Literal::Int(i64::MIN))
        );
        assert_eq!(
            negate_number(&Literal::Number { text: "1.5m".into(), kind: NumberKind::Decimal }),
            Some(Literal::Number { text: "-1.5m".into(), kind: NumberKind::Decimal })
        );
        assert_eq!(
            negate_number(&Literal::Number { text: "NaN".into(), kind: NumberKind::Double }),
            Some(Literal::Number { text: "-NaN".into(), kind: NumberKind::Double })
        );
        assert_eq!(negate_number(&Literal::Int(-5)), None);
        assert_eq!(negate_number(&Literal::Null), None);
    }

    #[test]
    fn strings() {
        assert_eq!(one("'abc'"), Tok::Lit(Literal::String("abc".into())));
        assert_eq!(one("''"), Tok::Lit(Literal::String(String::new())));
        assert_eq!(one("'O''Bryan'"), Tok::Lit(Literal::String("O'Bryan".into())));
        assert_eq!(one("''''"), Tok::Lit(Literal::String("'".into())));
        assert_eq!(one("'é😀 x'"), Tok::Lit(Literal::String("é😀 x".into())));
        let e = toks("name eq 'abc").unwrap_err();
        assert_eq!(e.message, "There is an unterminated string literal at position 12 in 'name eq 'abc'.");
        assert_eq!(e.kind, ErrorKind::UnterminatedLiteral);
        let e = toks("'a''").unwrap_err();
        assert_eq!(e.position, 4);
    }

    #[test]
    fn guids_dates() {
        let g = "7a914942-34cb-ed11-b596-0022481d68cd";
        assert_eq!(one(g), Tok::Lit(Literal::Guid(g.into())));
        assert_eq!(one("7A914942-34CB-ED11-B596-0022481D68CD"), Tok::Lit(Literal::Guid(g.into())));
        // letter-initial GUID
        assert_eq!(
            one("a0000000-0000-0000-0000-000000000000"),
            Tok::Lit(Literal::Guid("a0000000-0000-0000-0000-000000000000".into()))
        );
        assert!(matches!(one("2023-01-01"), Tok::Lit(Literal::Date(_))));
        assert!(matches!(one("2023-01-01T00:00:00Z"), Tok::Lit(Literal::DateTimeOffset(_))));
        assert!(matches!(one("2023-01-01T00:00:00.5-05:00"), Tok::Lit(Literal::DateTimeOffset(_))));
        assert_eq!(toks("f(2023-01-01,2023-01-01T00:00:00Z)").unwrap().len(), 6);
        let e = toks("d eq 2023-13-01").unwrap_err();
        assert_eq!(e.message, "Unrecognized 'Edm.Date' literal '2023-13-01' at '5' in 'd eq 2023-13-01'.");
        let e = toks("d eq 2023-01-01T00:00:00").unwrap_err();
        assert_eq!(
            e.message,
            "Unrecognized 'Edm.DateTimeOffset' literal '2023-01-01T00:00:00' at '5' in 'd eq 2023-01-01T00:00:00'."
        );
        // A '+' that arrived as a space (un-encoded '+') breaks the literal, as on Dataverse.
        assert!(toks("d eq 2023-01-01T00:00:00 01:00").is_err());
    }

    #[test]
    fn identifiers_and_typed_literals() {
        assert_eq!(one("name"), Tok::Ident("name".into()));
        assert_eq!(one("_parentcustomerid_value"), Tok::Ident("_parentcustomerid_value".into()));
        assert_eq!(one("$count"), Tok::Ident("$count".into()));
        assert_eq!(one("Microsoft.Dynamics.CRM.In"), Tok::Ident("Microsoft.Dynamics.CRM.In".into()));
        assert_eq!(one("nämé"), Tok::Ident("nämé".into()));
        assert_eq!(
            one("Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'"),
            Tok::Lit(Literal::Enum {
                type_name: "Microsoft.Dynamics.CRM.AttributeTypeCode".into(),
                value: "Picklist".into()
            })
        );
        assert_eq!(one("duration'P1D'"), Tok::Lit(Literal::Duration("P1D".into())));
        assert!(toks("null'x'").is_err());
        assert!(toks("Bryan'x'").is_err());
        assert_eq!(one("true"), Tok::Lit(Literal::Bool(true)));
        assert_eq!(one("True"), Tok::Ident("True".into()));
        assert_eq!(one("null"), Tok::Lit(Literal::Null));
        // a dot not followed by an identifier is not part of the name
        let e = toks("a.").unwrap_err();
        assert_eq!(e.message, "Syntax error: character '.' is not valid at position 1 in 'a.'.");
    }

    #[test]
    fn punctuation_and_whitespace() {
        assert_eq!(
            toks(" ( ) , / : = - ").unwrap(),
            vec![Tok::LParen, Tok::RParen, Tok::Comma, Tok::Slash, Tok::Colon, Tok::Equals, Tok::Minus]
        );
        assert_eq!(toks("\t\n\r\u{a0}x\u{3000}").unwrap(), vec![Tok::Ident("x".into())]);
        for (s, c, p) in [("a + b", '+', 2), ("\"a\"", '"', 0), ("{", '{', 0), ("x;y", ';', 1), ("é*", '*', 1)] {
            let e = toks(s).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidCharacter, "{s}");
            assert_eq!(e.message, format!("Syntax error: character '{c}' is not valid at position {p} in '{s}'."));
        }
    }

    #[test]
    fn aliases() {
        assert_eq!(one("@p1"), Tok::Alias("@p1".into()));
        assert!(toks("@").is_err());
        let e = toks("@1").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidCharacter);
        let lx = Lexer::new("@p1", AliasMode::ForbiddenInExpand);
        let e = lx.err().unwrap();
        assert_eq!(e.kind, ErrorKind::Unsupported);
    }
}
