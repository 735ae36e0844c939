//! JSON-style arrays used as Dataverse query-function parameter values:
//! `["5","2000"]`, `['1','2']`, `["O'Brian","OBrian"]`, `[1,2.5,true,null]`.
//!
//! Strings may use double or single quotes, with JSON backslash escapes (a quote is *not*
//! escaped by doubling it here, unlike OData string literals). Messages follow ODataLib's
//! `JsonReader`.

use crate::ast::Literal;
use crate::error::{self, ParseError};
use crate::lexer::number_literal;

const MISSING_COMMA: &str = "Invalid JSON. A comma character ',' was expected in scope 'Array'. Every two elements in an array and properties of an object must be separated by commas.";
const UNEXPECTED_COMMA: &str = "Invalid JSON. An unexpected comma was found in scope 'Array'. A comma is only valid between properties of an object or between elements of an array.";
const OPEN_SCOPE: &str =
    "Invalid JSON. Unexpected end of input was found in JSON content. Not all object and array scopes were closed.";
const END_OF_STRING: &str = "Invalid JSON. Unexpected end of input reached while processing a JSON string value.";
const UNRECOGNIZED: &str = "Invalid JSON. A token was not recognized in the JSON content.";
const NESTED: &str =
    "Invalid JSON. Only arrays of primitive values (strings, numbers, true, false, null) are supported here.";

fn ch(s: &str, i: usize) -> Option<char> {
    s.get(i..)?.chars().next()
}

/// Parses the array starting with `[` at byte `start`; returns the items and the end offset.
pub(crate) fn parse_array(s: &str, start: usize) -> Result<(Vec<Literal>, usize), ParseError> {
    debug_assert_eq!(ch(s, start), Some('['));
    let mut i = start + 1;
    let mut items = Vec::new();
    let mut after_comma = false;
    loop {
        while let Some(c) = ch(s, i).filter(|c| c.is_whitespace()) {
            i += c.len_utf8();
        }
        let Some(c) = ch(s, i) else {
            return Err(error::json(s, i, OPEN_SCOPE));
        };
        match c {
            ']' => {
                if after_comma {
                    return Err(error::json(s, i, UNEXPECTED_COMMA));
                }
                return Ok((items, i + 1));
            }
            ',' => {
                if items.is_empty() || after_comma {
                    return Err(error::json(s, i, UNEXPECTED_COMMA));
                }
                after_comma = true;
                i += 1;
            }
            _ => {
                if !items.is_empty() && !after_comma {
                    return Err(error::json(s, i, MISSING_COMMA));
                }
                let (lit, end) = parse_value(s, i, c)?;
                items.push(lit);
                i = end;
                after_comma = false;
            }
        }
    }
}

fn parse_value(s: &str, i: usize, c: char) -> Result<(Literal, usize), ParseError> {
    match c {
        '"' | '\'' => parse_string(s, i, c),
        '-' | '0'..='9' => {
            let mut j = i;
            while let Some(d) = ch(s, j).filter(|d| matches!(d, '0'..='9' | '+' | '-' | '.' | 'e' | 'E')) {
                j += d.len_utf8();
            }
            let text = &s[i..j];
            if !is_json_number(text) {
                return Err(error::json(s, i, &format!("Invalid JSON. The value '{text}' is not a valid number.")));
            }
            let has_dot = text.contains('.');
            let has_exp = text.contains(['e', 'E']);
            match number_literal(text, has_dot, has_exp, None) {
                Some(l) => Ok((l, j)),
                None => Err(error::json(s, i, &format!("Invalid JSON. The value '{text}' is not a valid number."))),
            }
        }
        '[' | '{' => Err(error::json(s, i, NESTED)),
        c if c.is_alphabetic() => {
            let mut j = i;
            while let Some(d) = ch(s, j).filter(|d| d.is_alphanumeric()) {
                j += d.len_utf8();
            }
            let lit = match &s[i..j] {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "null" => Literal::Null,
                _ => return Err(error::json(s, i, UNRECOGNIZED)),
            };
            Ok((lit, j))
        }
        _ => Err(error::json(s, i, UNRECOGNIZED)),
    }
}

fn is_json_number(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == int_start {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

fn parse_string(s: &str, start: usize, quote: char) -> Result<(Literal, usize), ParseError> {
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(c) = ch(s, i) else {
            return Err(error::json(s, i, END_OF_STRING));
        };
        i += c.len_utf8();
        if c == quote {
            return Ok((Literal::String(out), i));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = ch(s, i) else {
            return Err(error::json(s, i, END_OF_STRING));
        };
        i += e.len_utf8();
        match e {
            '"' | '\'' | '\\' | '/' => out.push(e),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hi = hex4(s, i).ok_or_else(|| bad_escape(s, i, "\\u"))?;
                i += 4;
                let cp = if (0xD800..0xDC00).contains(&hi)
                    && s.get(i..i + 2) == Some("\\u")
                    && let Some(lo) = hex4(s, i + 2).filter(|lo| (0xDC00..0xE000).contains(lo))
                {
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
            }
            other => {
                return Err(bad_escape(s, i, &format!("\\{other}")));
            }
        }
    }
}

fn bad_escape(s: &str, i: usize, seq: &str) -> ParseError {
    error::json(
        s,
        i,
        &format!("Invalid JSON. An unrecognized escape sequence '{seq}' was found in a JSON string value."),
    )
}

fn hex4(s: &str, i: usize) -> Option<u32> {
    let h = s.get(i..i + 4)?;
    if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::NumberKind;

    fn arr(s: &str) -> Result<Vec<Literal>, ParseError> {
        let (v, end) = parse_array(s, 0)?;
        assert_eq!(end, s.len(), "array should end at input end for {s:?}");
        Ok(v)
    }

    fn strs(v: &[&str]) -> Vec<Literal> {
        v.iter().map(|s| Literal::String((*s).into())).collect()
    }

    #[test]
    fn string_arrays() {
        assert_eq!(arr(r#"["5","2000"]"#).unwrap(), strs(&["5", "2000"]));
        assert_eq!(arr("['1','2']").unwrap(), strs(&["1", "2"]));
        assert_eq!(arr(r#"["O'Brian","OBrian"]"#).unwrap(), strs(&["O'Brian", "OBrian"]));
        assert_eq!(arr(r#"[ "a" , 'b' ]"#).unwrap(), strs(&["a", "b"]));
        assert_eq!(arr("[]").unwrap(), vec![]);
        assert_eq!(arr("[ ]").unwrap(), vec![]);
        assert_eq!(arr(r#"["a\"b"]"#).unwrap(), strs(&["a\"b"]));
        assert_eq!(arr(r"['a\'b']").unwrap(), strs(&["a'b"]));
        assert_eq!(arr(r#"["\u00e9\n\t\\\/"]"#).unwrap(), strs(&["é\n\t\\/"]));
        assert_eq!(arr(r#"["\ud83d\ude00"]"#).unwrap(), strs(&["😀"]));
        assert_eq!(arr(r#"["\ud83d"]"#).unwrap(), strs(&["\u{FFFD}"]));
        assert_eq!(arr(r#"["]"]"#).unwrap(), strs(&["]"]));
    }

    #[test]
    fn primitive_arrays() {
        assert_eq!(
            arr("[1,-2,2.5,1e3,true,false,null]").unwrap(),
            vec![
                Literal::Int(1),
                Literal::Int(-2),
                Literal::Number { text: "2.5".into(), kind: NumberKind::Decimal },
                Literal::Number { text: "1e3".into(), kind: NumberKind::Double },
                Literal::Bool(true),
                Literal::Bool(false),
                Literal::Null,
            ]
        );
    }

    #[test]
    fn errors() {
        // The reference's example: a single quote inside a single-quoted item.
        let e = arr("['O'Brian','OBrian']").unwrap_err();
        assert_eq!(e.message, MISSING_COMMA);
        assert!(e.message.starts_with("Invalid JSON. A comma character ',' was expected in scope 'Array'."));
        assert_eq!(arr("['a' 'b']").unwrap_err().message, MISSING_COMMA);
        assert_eq!(arr("[,'a']").unwrap_err().message, UNEXPECTED_COMMA);
        assert_eq!(arr("['a',,'b']").unwrap_err().message, UNEXPECTED_COMMA);
        assert_eq!(arr("['a',]").unwrap_err().message, UNEXPECTED_COMMA);
        assert_eq!(arr("['a'").unwrap_err().message, OPEN_SCOPE);
        assert_eq!(arr("[").unwrap_err().message, OPEN_SCOPE);
        assert_eq!(arr("['a").unwrap_err().message, END_OF_STRING);
        assert_eq!(arr(r#"["a\"#).unwrap_err().message, END_OF_STRING);
        assert_eq!(arr("[abc]").unwrap_err().message, UNRECOGNIZED);
        assert_eq!(arr("[%]").unwrap_err().message, UNRECOGNIZED);
        assert_eq!(arr("[[1]]").unwrap_err().message, NESTED);
        assert_eq!(arr("[{}]").unwrap_err().message, NESTED);
        assert_eq!(arr("[1.]").unwrap_err().message, "Invalid JSON. The value '1.' is not a valid number.");
        assert_eq!(arr("[--1]").unwrap_err().message, "Invalid JSON. The value '--1' is not a valid number.");
        assert_eq!(
            arr(r#"["\x"]"#).unwrap_err().message,
            "Invalid JSON. An unrecognized escape sequence '\\x' was found in a JSON string value."
        );
        assert_eq!(
            arr(r#"["\u12"]"#).unwrap_err().message,
            "Invalid JSON. An unrecognized escape sequence '\\u' was found in a JSON string value."
        );
        assert!(arr("[1,2").unwrap_err().kind == crate::ErrorKind::InvalidJson);
    }
}
