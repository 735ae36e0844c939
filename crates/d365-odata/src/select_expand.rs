//! `$select` and `$expand`.

use crate::MAX_DEPTH;
use crate::ast::{ExpandItem, ExpandOptions};
use crate::error::{self, ErrorKind, ParseError};
use crate::lexer::{is_ident_continue, is_ident_start};
use crate::parser::Parser;

fn ch(s: &str, i: usize) -> Option<char> {
    s.get(i..)?.chars().next()
}

fn skip_ws(s: &str, mut i: usize) -> usize {
    while let Some(c) = ch(s, i).filter(|c| c.is_whitespace()) {
        i += c.len_utf8();
    }
    i
}

/// Reads a plain identifier (no dots, no `$`) at `i`; returns its end, or an error.
fn ident_at(s: &str, i: usize) -> Result<usize, ParseError> {
    match ch(s, i) {
        None | Some(',') => Err(error::syntax(s, i)),
        Some(c) if is_ident_start(c) && c != '$' => {
            let mut j = i + c.len_utf8();
            while let Some(d) = ch(s, j).filter(|d| is_ident_continue(*d)) {
                j += d.len_utf8();
            }
            Ok(j)
        }
        Some(c) => Err(error::invalid_char(s, i, c)),
    }
}

/// `$select=a,b,c` → `["a","b","c"]`.
pub(crate) fn parse_select(s: &str) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        i = skip_ws(s, i);
        let start = i;
        let end = ident_at(s, i)?;
        out.push(s[start..end].to_string());
        i = skip_ws(s, end);
        match ch(s, i) {
            None => return Ok(out),
            Some(',') => i += 1,
            Some(c) if is_ident_continue(c) || c == '$' => return Err(error::syntax(s, i)),
            Some(c) => return Err(error::invalid_char(s, i, c)),
        }
    }
}

/// Scans from just after an opening `(` at `open` to its matching `)`, skipping quoted text
/// (`'…'` with `''`, `"…"` with backslash escapes). Returns the index of the `)`.
fn matching_paren(s: &str, open: usize) -> Option<usize> {
    let mut depth = 1usize;
    let mut it = s[open + 1..].char_indices().map(|(k, c)| (open + 1 + k, c));
    while let Some((k, c)) = it.next() {
        match c {
            '\'' => loop {
                // '' inside a literal is an escaped quote; both halves toggle, so just skip on
                let (_, d) = it.next()?;
                if d == '\'' {
                    break;
                }
            },
            '"' => loop {
                let (_, d) = it.next()?;
                match d {
                    '\\' => {
                        it.next()?;
                    }
                    '"' => break,
                    _ => {}
                }
            },
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits `s` at top-level `;` (outside parentheses, brackets and quotes).
fn split_options(s: &str) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut it = s.char_indices();
    while let Some((k, c)) = it.next() {
        match c {
            '\'' => {
                for (_, d) in it.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some((_, d)) = it.next() {
                    match d {
                        '\\' => {
                            it.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => {
                parts.push((start, k));
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push((start, s.len()));
    parts
}

/// `$expand=a,b($select=x;$filter=…),c/$ref`.
pub(crate) fn parse_expand(s: &str, depth: usize) -> Result<Vec<ExpandItem>, ParseError> {
    if depth > MAX_DEPTH {
        return Err(error::too_deep(s, 0));
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        i = skip_ws(s, i);
        let start = i;
        let end = ident_at(s, i)?;
        let navigation = s[start..end].to_string();
        i = skip_ws(s, end);
        let mut is_ref = false;
        if ch(s, i) == Some('/') {
            let r = skip_ws(s, i + 1);
            if s[r..].starts_with("$ref") && !ch(s, r + 4).is_some_and(is_ident_continue) {
                is_ref = true;
                i = skip_ws(s, r + 4);
            } else {
                return Err(error::syntax(s, r));
            }
        }
        let mut options = ExpandOptions::default();
        if ch(s, i) == Some('(') {
            let Some(close) = matching_paren(s, i) else {
                return Err(error::expected(s, s.len(), "')'"));
            };
            let inner = &s[i + 1..close];
            if inner.trim().is_empty() {
                return Err(missing_option(s, i, &navigation));
            }
            options = parse_expand_options(inner, depth)?;
            i = skip_ws(s, close + 1);
        }
        out.push(ExpandItem { navigation, is_ref, options });
        match ch(s, i) {
            None => return Ok(out),
            Some(',') => i += 1,
            Some(c) if is_ident_continue(c) || c == '$' || c == '/' => {
                return Err(error::syntax(s, i));
            }
            Some(c) => return Err(error::invalid_char(s, i, c)),
        }
    }
}

fn parse_expand_options(s: &str, depth: usize) -> Result<ExpandOptions, ParseError> {
    let mut o = ExpandOptions::default();
    for (a, b) in split_options(s) {
        let part = &s[a..b];
        let Some(eq) = part.find('=') else {
            return Err(term_invalid(s, a, part));
        };
        let name = part[..eq].trim();
        if name.eq_ignore_ascii_case("$expand") {
            if o.expand.is_some() {
                return Err(duplicate(s, a, part, name));
            }
            o.expand = Some(parse_expand(&part[eq + 1..], depth + 1)?);
        } else {
            simple_option(&mut o, s, a, part, eq)?;
        }
    }
    Ok(o)
}

/// Kept out of the recursive path (`parse_expand` → `parse_expand_options` → `parse_expand`)
/// so that deep `$expand` nesting uses little stack.
#[inline(never)]
fn simple_option(o: &mut ExpandOptions, s: &str, a: usize, part: &str, eq: usize) -> Result<(), ParseError> {
    let name = part[..eq].trim();
    let value = &part[eq + 1..];
    let at = a + (part.len() - part.trim_start().len());
    let dup = |set: bool| {
        if set { Err(error::duplicate_option(s, at, name)) } else { Ok(()) }
    };
    match name.to_ascii_lowercase().as_str() {
        "$select" => {
            dup(o.select.is_some())?;
            o.select = Some(parse_select(value)?);
        }
        "$filter" => {
            dup(o.filter.is_some())?;
            let mut p = Parser::new(value, None, 0)?;
            let e = p.parse_expr()?;
            p.expect_end()?;
            o.filter = Some(e);
        }
        "$orderby" => {
            dup(o.orderby.is_some())?;
            let mut p = Parser::new(value, None, 0)?;
            o.orderby = Some(p.parse_orderby()?);
        }
        "$top" => {
            dup(o.top.is_some())?;
            let v = value.trim();
            match v.parse::<u64>() {
                Ok(n) if !v.starts_with('+') && n <= i64::MAX as u64 => o.top = Some(n),
                _ => {
                    return Err(ParseError::new(
                        ErrorKind::InvalidValue,
                        s,
                        at,
                        format!("Top option must be a non-negative integer, it is set to '{value}' instead."),
                    ));
                }
            }
        }
        "$skip" | "$count" | "$levels" | "$search" | "$apply" | "$compute" | "$format" | "$skiptoken" => {
            return Err(ParseError::new(
                ErrorKind::Unsupported,
                s,
                at,
                format!("The query option '{name}' is not supported inside $expand."),
            ));
        }
        _ => return Err(term_invalid(s, a, part)),
    }
    Ok(())
}

#[inline(never)]
fn term_invalid(s: &str, a: usize, part: &str) -> ParseError {
    ParseError::new(ErrorKind::Syntax, s, a, format!("Term '{part}' is not valid in a $select or $expand expression."))
}

#[inline(never)]
fn duplicate(s: &str, a: usize, part: &str, name: &str) -> ParseError {
    let at = a + (part.len() - part.trim_start().len());
    error::duplicate_option(s, at, name)
}

#[inline(never)]
fn missing_option(s: &str, at: usize, navigation: &str) -> ParseError {
    ParseError::new(
        ErrorKind::Syntax,
        s,
        at,
        format!(
            "Missing expand option on navigation property '{navigation}'. If a parenthesis expression follows an expanded navigation property, then at least one expand option must be provided."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_nesting_and_quotes() {
        let s = "$select=a;$filter=x eq ';)' and y eq [\";\"];$expand=b($select=c;$top=1)";
        let parts: Vec<&str> = split_options(s).into_iter().map(|(a, b)| &s[a..b]).collect();
        assert_eq!(parts, vec!["$select=a", "$filter=x eq ';)' and y eq [\";\"]", "$expand=b($select=c;$top=1)"]);
    }

    #[test]
    fn matching_parens() {
        let s = "a(b(c)')'\")\")x";
        assert_eq!(matching_paren(s, 1), Some(12));
        assert_eq!(matching_paren("a(b", 1), None);
        assert_eq!(matching_paren("a('x", 1), None);
        assert_eq!(matching_paren("a(\"\\", 1), None);
    }
}
