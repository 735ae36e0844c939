//! A minimal JSON scanner over one page body (the SQL engine's Arrow decoder and the paging
//! facts of `slim_page` read pages with it): it hands out keys
//! and scalar tokens as slices of the body and skips everything else, without building any
//! value. The body is not validated as UTF-8 up front: what is handed out as text is checked
//! on its own (keys met for the first time, tokens), or, for text columns, when the Arrow array
//! is built; bytes that are skipped are only scanned for quotes. The bulk of a Web API page is
//! keys and short string values (GUIDs, names, formatted values), so the end of a string is
//! found eight bytes at a time with a branch-light word test that the compiler inlines (a
//! `memchr` call costs more than it saves on 20-60 byte strings). Only strings that contain
//! escapes and are kept are copied, unescaped into a buffer the scanner reuses (`tests` check
//! the unescaping against `serde_json`); skipped strings are never unescaped.

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
    b: &'a [u8],
    /// `b` as text, when it is known to be UTF-8 as a whole: strings are then sliced out of it
    /// without a check each.
    text: Option<&'a str>,
    i: usize,
    /// Reused for strings with escapes.
    scratch: String,
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
        Self { text: Some(s), ..Self::from_bytes(s.as_bytes()) }
    }

    /// A scanner at the start of `b`, which need not be valid UTF-8 where it is skipped.
    pub fn from_bytes(b: &'a [u8]) -> Self {
        Self { b, text: None, i: 0, scratch: String::new() }
    }

    /// A scanner at the start of `b` that checks `b` is UTF-8 once, as a whole (fast for the
    /// mostly-ASCII text of a page), instead of each string it hands out; a body that is not
    /// UTF-8 is scanned as [`Scanner::from_bytes`] does, so an error names the value at fault.
    pub fn checked(b: &'a [u8]) -> Self {
        match std::str::from_utf8(b) {
            Ok(text) => Self::new(text),
            Err(_) => Self::from_bytes(b),
        }
    }

    /// `b[start..end]` as text, or an error at the first byte that is not UTF-8.
    #[inline]
    fn utf8(&self, start: usize, end: usize) -> Result<&'a str> {
        // Strings start and end next to quotes (ASCII), so the slice is on character bounds.
        if let Some(text) = self.text.and_then(|t| t.get(start..end)) {
            return Ok(text);
        }
        std::str::from_utf8(&self.b[start..end])
            .map_err(|e| ScanError { message: "the page is not UTF-8".into(), offset: start + e.valid_up_to() })
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
    #[inline(always)]
    pub fn string(&mut self) -> Result<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        let start = self.i;
        let (end, escaped) = self.string_end(start)?;
        self.i = end + 1;
        if !escaped {
            return Ok(Cow::Borrowed(self.utf8(start + 1, end)?));
        }
        self.unescape(start, end)
    }

    /// The byte range (in [`Scanner::bytes`]) of the content of the string at the scanner (on
    /// its opening quote), consumed, if it holds no escapes; `None` (nothing consumed) if it
    /// does, for [`Scanner::string`] or [`Scanner::unescaped`]. Not checked to be UTF-8.
    #[inline(always)]
    pub fn plain_span(&mut self) -> Result<Option<(usize, usize)>> {
        let start = self.i;
        let (end, escaped) = self.string_end(start)?;
        if escaped {
            return Ok(None);
        }
        self.i = end + 1;
        Ok(Some((start + 1, end)))
    }

    /// The current byte offset.
    pub fn position(&self) -> usize {
        self.i
    }

    /// The whole body being scanned.
    pub fn bytes(&self) -> &'a [u8] {
        self.b
    }

    /// The string at the scanner (on its opening quote), unescaped into a buffer the scanner
    /// reuses: no allocation per string.
    #[inline]
    pub fn unescaped(&mut self) -> Result<&str> {
        let start = self.i;
        let (end, _) = self.string_end(start)?;
        self.scratch.clear();
        let content = self.utf8(start + 1, end)?;
        unescape_into(content, &mut self.scratch)
            .map_err(|message| ScanError { message: format!("bad string: {message}"), offset: start })?;
        self.i = end + 1;
        Ok(&self.scratch)
    }

    /// The string from the quote at `start` to the one at `end`, unescaped (rare in pages:
    /// kept out of line so the common path stays small).
    #[cold]
    #[inline(never)]
    fn unescape(&self, start: usize, end: usize) -> Result<Cow<'a, str>> {
        let mut out = String::with_capacity(end - start);
        unescape_into(self.utf8(start + 1, end)?, &mut out)
            .map_err(|message| ScanError { message: format!("bad string: {message}"), offset: start })?;
        Ok(Cow::Owned(out))
    }

    /// Skips a string (the scanner is on its opening quote) without unescaping it.
    #[inline(always)]
    pub fn skip_string(&mut self) -> Result<()> {
        let (end, _) = self.string_end(self.i)?;
        self.i = end + 1;
        Ok(())
    }

    /// The offset of the closing quote of the string opening at `start`, and whether the
    /// string holds escapes.
    #[inline(always)]
    fn string_end(&self, start: usize) -> Result<(usize, bool)> {
        let mut j = start + 1;
        let mut escaped = false;
        while let Some(k) = find_quote_or_backslash(self.b, j) {
            if self.b[k] == b'"' {
                return Ok((k, escaped));
            }
            escaped = true;
            j = k + 2;
        }
        Err(ScanError { message: "unterminated string".into(), offset: start })
    }

    /// If the text at the scanner starts with `bytes`, consumes them.
    #[inline]
    pub fn eat(&mut self, bytes: &[u8]) -> bool {
        match self.b.get(self.i..self.i + bytes.len()) {
            Some(here) if same(here, bytes) => {
                self.i += bytes.len();
                true
            }
            _ => false,
        }
    }

    /// A key and its colon, with the raw text they span (from the opening quote through the
    /// colon): a later row holding the same key at the same place can be recognised with
    /// [`Scanner::eat`] on that text, without scanning it.
    #[inline]
    pub fn key_raw(&mut self) -> Result<(Cow<'a, str>, &'a [u8])> {
        self.ws();
        let start = self.i;
        let k = self.key()?;
        Ok((k, &self.b[start..self.i]))
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
            Some(b'-' | b'0'..=b'9') => Ok(Token::Number(self.number())),
            _ => Err(self.error("expected a value")),
        }
    }

    /// The number at the scanner (which is on its first character), as written.
    #[inline]
    pub fn number(&mut self) -> &'a str {
        // Only ASCII characters are taken, so this is always text.
        std::str::from_utf8(self.number_bytes()).unwrap_or_default()
    }

    /// [`Scanner::number`] as bytes.
    #[inline]
    pub fn number_bytes(&mut self) -> &'a [u8] {
        let start = self.i;
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                self.i += 1;
            } else {
                break;
            }
        }
        &self.b[start..self.i]
    }

    #[inline]
    fn word(&mut self, w: &str, t: Token<'a>) -> Result<Token<'a>> {
        if self.b.get(self.i..self.i + w.len()).is_some_and(|here| same(here, w.as_bytes())) {
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
            Some(b'"') => self.skip_string(),
            _ => self.token().map(|_| ()),
        }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }
}

/// Whether two slices of the same length hold the same bytes: eight at a time, inline (keys
/// are 10-80 bytes, where a call to `memcmp` costs as much as the comparison).
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], i: usize| s.get(i..).and_then(<[u8]>::first_chunk::<8>).map_or(0, |w| u64::from_ne_bytes(*w));
    let differ = |i: usize| word(a, i) ^ word(b, i);
    // Sixteen bytes per step, then the last eight (overlapping what was compared before).
    let mut i = 0;
    while i + 16 <= n {
        if differ(i) | differ(i + 8) != 0 {
            return false;
        }
        i += 16;
    }
    (if i + 8 <= n { differ(i) } else { 0 }) | differ(n - 8) == 0
}

/// [`find_quote_or_backslash`] sixteen bytes per step, both characters compared at once:
/// `Ok(position)`, or `Err(offset)` of the last few bytes, left to the word test.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn find_sse2(b: &[u8], from: usize) -> std::result::Result<usize, usize> {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x, _mm_set1_epi8};
    let (quote, slash) = (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8));
    let mut j = from;
    while let Some(chunk) = b.get(j..).and_then(<[u8]>::first_chunk::<16>) {
        let (lo, hi) = chunk.split_at(8);
        let word = |half: &[u8]| half.first_chunk::<8>().map_or(0, |w| i64::from_le_bytes(*w));
        let v = _mm_set_epi64x(word(hi), word(lo));
        let hits = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)));
        if hits != 0 {
            return Ok(j + hits.trailing_zeros() as usize);
        }
        j += 16;
    }
    Err(j)
}

/// Appends the JSON string content `text` (between its quotes) to `out`, unescaped.
fn unescape_into(text: &str, out: &mut String) -> std::result::Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    // Inside a string's content, the only quotes are escaped ones, so this finds backslashes.
    while let Some(k) = find_quote_or_backslash(b, i) {
        out.push_str(&text[i..k]);
        let escape = b.get(k + 1).copied();
        i = k + 2;
        let c = match escape {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let unit = |at: usize| {
                    text.get(at..at + 4)
                        .and_then(|h| {
                            u32::from_str_radix(h, 16).ok().filter(|_| h.bytes().all(|c| c.is_ascii_hexdigit()))
                        })
                        .ok_or_else(|| "\\u needs four hexadecimal digits".to_string())
                };
                let high = unit(i)?;
                i += 4;
                let code = match high {
                    0xD800..=0xDBFF => {
                        if b.get(i..i + 2) != Some(b"\\u") {
                            return Err("a high surrogate must be followed by a low one".into());
                        }
                        let low = unit(i + 2)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err("a high surrogate must be followed by a low one".into());
                        }
                        i += 6;
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err("a lone low surrogate".into()),
                    c => c,
                };
                char::from_u32(code).ok_or_else(|| format!("\\u{code:x} is not a character"))?
            }
            _ => return Err("an invalid escape".into()),
        };
        out.push(c);
    }
    out.push_str(&text[i..]);
    Ok(())
}

/// The first `"` or `\\` at or after `from`. Eight bytes at a time: a byte equal to the
/// searched one becomes zero after the xor, and `(x - 0x01…) & !x & 0x80…` flags zero bytes
/// (flags above the first true one may be spurious, so only the lowest flag is used).
#[inline(always)]
fn find_quote_or_backslash(b: &[u8], from: usize) -> Option<usize> {
    // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it, and the
    // function only reads through safe slice accessors.
    #[cfg(target_arch = "x86_64")]
    let from = match unsafe { find_sse2(b, from) } {
        Ok(found) => return Some(found),
        Err(rest) => rest,
    };
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const SLASHES: u64 = ONES * b'\\' as u64;
    let mut j = from;
    while let Some(chunk) = b.get(j..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*chunk);
        let (q, s) = (w ^ QUOTES, w ^ SLASHES);
        let hits = ((q.wrapping_sub(ONES) & !q) | (s.wrapping_sub(ONES) & !s)) & HIGHS;
        if hits != 0 {
            return Some(j + (hits.trailing_zeros() / 8) as usize);
        }
        j += 8;
    }
    b.get(j..)?.iter().position(|&c| c == b'"' || c == b'\\').map(|k| j + k)
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

    #[test]
    fn quote_search_agrees_with_a_plain_loop() {
        // Every position of a quote or backslash, in and out of 8-byte words, with bytes whose
        // borrow could fool the word test (0x21, 0x23, 0x5b, 0x5d, 0x80+).
        let alphabet = [b'a', b'"', b'\\', 0x21, 0x23, 0x5b, 0x5d, 0xc3, 0x00, b' '];
        let mut seed = 7u64;
        for len in 0..40 {
            for _ in 0..200 {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        alphabet[(seed >> 33) as usize % alphabet.len()]
                    })
                    .collect();
                for from in 0..=len {
                    let plain = text[from..].iter().position(|&c| c == b'"' || c == b'\\').map(|k| from + k);
                    assert_eq!(find_quote_or_backslash(&text, from), plain, "{text:?} from {from}");
                }
            }
        }
    }

    #[test]
    fn unescaping_agrees_with_serde_json() {
        for text in [
            r#""plain""#,
            r#""a\"b\\c\/d\b\f\n\r\te""#,
            r#""\u00e9\u20AC x \ud83d\ude00 end""#,
            r#""Notes for record 0.\nLine two with \"quotes\" and a tab\tchar""#,
            r#""\\""#,
        ] {
            let expected: String = serde_json::from_str(text).unwrap();
            assert_eq!(Scanner::new(text).string().unwrap(), expected, "{text}");
            assert_eq!(Scanner::new(text).unescaped().unwrap(), expected, "{text}");
        }
        for bad in [r#""\x""#, r#""\u12""#, r#""\u12G4""#, r#""\ud83d""#, r#""\ud83dx""#, r#""\ude00""#] {
            assert!(serde_json::from_str::<String>(bad).is_err(), "{bad}");
            assert!(Scanner::new(bad).string().is_err(), "{bad}");
            assert!(Scanner::new(bad).unescaped().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_body_checked_once_hands_out_the_same_strings() {
        let body = r#"{"a":"h\u00e9llo","b":"wörld","c":12}"#.as_bytes();
        for mut s in [Scanner::checked(body), Scanner::from_bytes(body)] {
            assert!(s.open(b'{', b'}').unwrap());
            assert_eq!(s.key().unwrap(), "a");
            assert_eq!(s.string().unwrap(), "h\u{e9}llo");
            assert!(s.more(b'}').unwrap());
            assert_eq!(s.key().unwrap(), "b");
            assert_eq!(s.string().unwrap(), "w\u{f6}rld");
        }
        // Not UTF-8 as a whole: strings are checked one by one, and only those handed out.
        let bad = b"{\"skipped\":\"a\xffb\",\"name\":\"x\"}";
        let mut s = Scanner::checked(bad);
        assert!(s.open(b'{', b'}').unwrap());
        assert_eq!(s.key().unwrap(), "skipped");
        assert!(s.string().is_err());
        s = Scanner::checked(bad);
        assert!(s.open(b'{', b'}').unwrap());
        s.key().unwrap();
        s.skip_value().unwrap();
        assert!(s.more(b'}').unwrap());
        assert_eq!(s.key().unwrap(), "name");
        assert_eq!(s.string().unwrap(), "x");
    }

    #[test]
    fn only_what_is_handed_out_must_be_utf8() {
        let body = b"[\"ok\", \"skip \xff me\", \"bad \xfe\"]";
        let mut s = Scanner::from_bytes(body);
        assert!(s.open(b'[', b']').unwrap());
        assert_eq!(s.string().unwrap(), "ok");
        assert!(s.more(b']').unwrap());
        s.skip_value().unwrap();
        assert!(s.more(b']').unwrap());
        let err = s.string().unwrap_err();
        assert_eq!((err.message.as_str(), err.offset), ("the page is not UTF-8", 25));
    }

    #[test]
    fn same_compares_every_byte() {
        let a: Vec<u8> = (0..40).collect();
        for n in 0..40 {
            assert!(same(&a[..n], &a[..n]));
            for k in 0..n {
                let mut b = a[..n].to_vec();
                b[k] ^= 0x40;
                assert!(!same(&a[..n], &b), "length {n}, byte {k}");
            }
        }
        assert!(!same(b"abc", b"ab"));
    }

    #[test]
    fn keys_are_recognised_by_their_raw_text() {
        let text = r#"{"a\u0062":1,"ab":2}"#;
        let mut s = Scanner::new(text);
        assert!(s.open(b'{', b'}').unwrap());
        let (k, raw) = s.key_raw().unwrap();
        assert_eq!((k.as_ref(), raw), ("ab", &br#""a\u0062":"#[..]));
        s.token().unwrap();
        assert!(s.more(b'}').unwrap());
        assert!(!s.eat(raw), "the same key spelled differently is not the same text");
        assert!(s.eat(br#""ab":"#));
        assert_eq!(s.token().unwrap(), Token::Number("2"));
        assert!(!s.eat(b"}}"), "past the end");
        // A skipped string is not unescaped, so a bad escape inside it costs nothing.
        let mut s = Scanner::new(r#"["x\q", 1]"#);
        s.skip_value().unwrap();
        assert!(s.at_end());
    }
}
