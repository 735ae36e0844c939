//! A minimal JSON scanner over one page body, for [`crate::arrow_decode`]: it hands out keys
//! and scalar tokens as slices of the (already UTF-8-validated) text and skips everything
//! else, without building any value. Strings are found with `memchr` (the bulk of a Web API
//! page is keys and string values), and only strings that contain escapes are copied (through
//! `serde_json`, so unescaping follows the JSON spec exactly).

use std::borrow::Cow;

/// A scalar token.
#[derive(Debug, Clone, PartialEq)]
pub enum Token<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(&'a str),
    /// A string, unescaped.
    Str(Cow<'a, str>),
    /// An object or array (skipped).
    Nested,
}

/// A position in a JSON text.
pub struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// A scanning error: what was expected, and the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// What went wrong.
    pub message: String,
    /// Byte offset in the body.
    pub offset: usize,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

type Result<T> = std::result::Result<T, ScanError>;

impl<'a> Scanner<'a> {
    /// A scanner at the start of `s`.
    pub fn new(s: &'a str) -> Self {
        Self { s, b: s.as_bytes(), i: 0 }
    }

    /// An error at the current position.
    pub fn error(&self, message: impl Into<String>) -> ScanError {
        ScanError { message: message.into(), offset: self.i }
    }

    /// Skips whitespace.
    #[inline]
    pub fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    /// The next byte after whitespace (not consumed).
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Consumes `c` (after whitespace) or fails.
    #[inline]
    pub fn expect(&mut self, c: u8) -> Result<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected '{}'", c as char)))
        }
    }

    /// After an element of an object or array closed by `close`: `true` if another element
    /// follows (a comma was consumed), `false` at the end (`close` consumed).
    #[inline]
    pub fn more(&mut self, close: u8) -> Result<bool> {
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(self.error(format!("expected ',' or '{}'", close as char))),
        }
    }

    /// Consumes the opening `{` / `[`: `true` if the container has elements.
    #[inline]
    pub fn open(&mut self, open: u8, close: u8) -> Result<bool> {
        self.expect(open)?;
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// A string (the scanner is on its opening quote), unescaped only if needed.
    #[inline]
    pub fn string(&mut self) -> Result<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        let start = self.i;
        let mut j = self.i + 1;
        let mut escaped = false;
        loop {
            match memchr::memchr2(b'"', b'\\', &self.b[j..]) {
                Some(k) if self.b[j + k] == b'"' => {
                    let end = j + k;
                    self.i = end + 1;
                    if !escaped {
                        return Ok(Cow::Borrowed(&self.s[start + 1..end]));
                    }
                    return serde_json::from_str::<String>(&self.s[start..=end])
                        .map(Cow::Owned)
                        .map_err(|e| ScanError { message: format!("bad string: {e}"), offset: start });
                }
                Some(k) => {
                    escaped = true;
                    j += k + 2;
                    if j > self.b.len() {
                        break;
                    }
                }
                None => break,
            }
        }
        self.i = self.b.len();
        Err(ScanError { message: "unterminated string".into(), offset: start })
    }

    /// A key and its colon.
    #[inline]
    pub fn key(&mut self) -> Result<Cow<'a, str>> {
        let k = self.string()?;
        self.expect(b':')?;
        Ok(k)
    }

    /// The next value as a token (objects and arrays are skipped and reported as `Nested`).
    #[inline]
    pub fn token(&mut self) -> Result<Token<'a>> {
        match self.peek() {
            Some(b'"') => self.string().map(Token::Str),
            Some(b'{' | b'[') => {
                self.skip_value()?;
                Ok(Token::Nested)
            }
            Some(b'n') => self.word("null", Token::Null),
            Some(b't') => self.word("true", Token::Bool(true)),
            Some(b'f') => self.word("false", Token::Bool(false)),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while let Some(c) = self.b.get(self.i) {
                    if matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                Ok(Token::Number(&self.s[start..self.i]))
            }
            _ => Err(self.error("expected a value")),
        }
    }

    fn word(&mut self, w: &str, t: Token<'a>) -> Result<Token<'a>> {
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(t)
        } else {
            Err(self.error(format!("expected '{w}'")))
        }
    }

    /// Skips one value of any kind.
    pub fn skip_value(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'{') => {
                if self.open(b'{', b'}')? {
                    loop {
                        self.key()?;
                        self.skip_value()?;
                        if !self.more(b'}')? {
                            break;
                        }
                    }
                }
                Ok(())
            }
            Some(b'[') => {
                if self.open(b'[', b']')? {
                    loop {
                        self.skip_value()?;
                        if !self.more(b']')? {
                            break;
                        }
                    }
                }
                Ok(())
            }
            _ => self.token().map(|_| ()),
        }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_strings_and_skipping() {
        let text = r#" {"a" : "x\"y\u00e9", "b":[1,{"c":null}], "d": -1.5e3, "e":true } "#;
        let mut s = Scanner::new(text);
        assert!(s.open(b'{', b'}').unwrap());
        assert_eq!(s.key().unwrap(), "a");
        assert_eq!(s.token().unwrap(), Token::Str(Cow::Owned("x\"yé".into())));
        assert!(s.more(b'}').unwrap());
        assert_eq!(s.key().unwrap(), "b");
        assert_eq!(s.token().unwrap(), Token::Nested);
        assert!(s.more(b'}').unwrap());
        assert_eq!(s.key().unwrap(), "d");
        assert_eq!(s.token().unwrap(), Token::Number("-1.5e3"));
        assert!(s.more(b'}').unwrap());
        assert_eq!(s.key().unwrap(), "e");
        assert_eq!(s.token().unwrap(), Token::Bool(true));
        assert!(!s.more(b'}').unwrap());
        assert!(s.at_end());
        assert!(Scanner::new(r#""abc"#).string().is_err());
        assert!(Scanner::new(r#""ab\"#).string().is_err());
        assert!(Scanner::new("nul").token().is_err());
    }
}
