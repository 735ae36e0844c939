//! The parser's error type and the Dataverse / ODataLib-worded message builders.

/// Broad classification of a [`ParseError`], for callers that map errors to codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Generic syntax error: `Syntax error at position N in '…'.`, `… expected at position N …`.
    Syntax,
    /// A character that cannot start any token (`"`, `{`, `+`, `;`, …).
    InvalidCharacter,
    /// A string literal or type-prefixed literal without its closing quote.
    UnterminatedLiteral,
    /// A literal with the right shape but an invalid value (`2023-13-01`, `5.` …).
    InvalidLiteral,
    /// A malformed JSON-style array (`['a' 'b']`).
    InvalidJson,
    /// Nesting deeper than [`crate::MAX_DEPTH`] or a runaway parameter-alias expansion.
    TooDeep,
    /// A bad `$top` / `$count` value.
    InvalidValue,
    /// A query option given twice (inside `$expand(...)` or to [`crate::QueryOptions::parse`]).
    DuplicateOption,
    /// Syntax this parser recognises but refuses as Dataverse does (`$skip` inside `$expand`,
    /// parameter aliases inside `$expand`, …).
    Unsupported,
}

/// A parse failure.
///
/// `message` is worded like Dataverse / ODataLib (`Syntax error at position 12 in 'name eq'.`).
/// Positions refer to `input`, which is the text the message quotes: for a nested option inside
/// `$expand=nav($filter=…)` or for a parameter-alias value that is the option / alias text, not the
/// whole query option, exactly as Dataverse reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Classification.
    pub kind: ErrorKind,
    /// Human-readable message (Dataverse wording).
    pub message: String,
    /// The text the position refers to.
    pub input: String,
    /// Byte offset into `input` (always on a char boundary, `<= input.len()`).
    pub byte_offset: usize,
    /// Position as printed in the message: UTF-16 code units from the start of `input`, which is
    /// what .NET (and therefore Dataverse) reports. Equals the char index for BMP-only text.
    pub position: usize,
}

impl ParseError {
    /// Builds an error; `byte_offset` is clamped to a char boundary of `input`.
    pub fn new(kind: ErrorKind, input: &str, byte_offset: usize, message: impl Into<String>) -> Self {
        let byte_offset = floor_boundary(input, byte_offset);
        ParseError {
            kind,
            message: message.into(),
            input: input.to_string(),
            byte_offset,
            position: utf16_pos(input, byte_offset),
        }
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// UTF-16 code-unit index of byte offset `at` (which must be a char boundary).
pub(crate) fn utf16_pos(s: &str, at: usize) -> usize {
    s.get(..at).map_or(0, |p| p.encode_utf16().count())
}

pub(crate) fn syntax(input: &str, at: usize) -> ParseError {
    let p = utf16_pos(input, floor_boundary(input, at));
    ParseError::new(ErrorKind::Syntax, input, at, format!("Syntax error at position {p} in '{input}'."))
}

/// `{what} expected at position N in '…'.` (`')' or ','`, `'('`, `Expression`, `'as'` …).
pub(crate) fn expected(input: &str, at: usize, what: &str) -> ParseError {
    let p = utf16_pos(input, floor_boundary(input, at));
    ParseError::new(ErrorKind::Syntax, input, at, format!("{what} expected at position {p} in '{input}'."))
}

pub(crate) fn unterminated_string(input: &str) -> ParseError {
    let at = input.len();
    let p = utf16_pos(input, at);
    ParseError::new(
        ErrorKind::UnterminatedLiteral,
        input,
        at,
        format!("There is an unterminated string literal at position {p} in '{input}'."),
    )
}

pub(crate) fn unterminated_literal(input: &str) -> ParseError {
    let at = input.len();
    let p = utf16_pos(input, at);
    ParseError::new(
        ErrorKind::UnterminatedLiteral,
        input,
        at,
        format!("There is an unterminated literal at position {p} in '{input}'."),
    )
}

pub(crate) fn invalid_char(input: &str, at: usize, c: char) -> ParseError {
    let p = utf16_pos(input, floor_boundary(input, at));
    ParseError::new(
        ErrorKind::InvalidCharacter,
        input,
        at,
        format!("Syntax error: character '{c}' is not valid at position {p} in '{input}'."),
    )
}

pub(crate) fn digit_expected(input: &str, at: usize) -> ParseError {
    let p = utf16_pos(input, floor_boundary(input, at));
    ParseError::new(ErrorKind::InvalidLiteral, input, at, format!("A digit was expected at position {p} in '{input}'."))
}

/// `Unrecognized 'Edm.Date' literal '2023-13-01' at '12' in '…'.`
pub(crate) fn unrecognized_literal(input: &str, at: usize, edm: &str, text: &str) -> ParseError {
    let p = utf16_pos(input, floor_boundary(input, at));
    ParseError::new(
        ErrorKind::InvalidLiteral,
        input,
        at,
        format!("Unrecognized '{edm}' literal '{text}' at '{p}' in '{input}'."),
    )
}

pub(crate) fn too_deep(input: &str, at: usize) -> ParseError {
    ParseError::new(ErrorKind::TooDeep, input, at, "Recursion depth exceeded allowed limit.")
}

pub(crate) fn identifier_expected(input: &str, at: usize) -> ParseError {
    let p = utf16_pos(input, floor_boundary(input, at));
    ParseError::new(ErrorKind::Syntax, input, at, format!("An identifier was expected at position {p}."))
}

pub(crate) fn json(input: &str, at: usize, message: &str) -> ParseError {
    ParseError::new(ErrorKind::InvalidJson, input, at, message)
}

pub(crate) fn duplicate_option(input: &str, at: usize, name: &str) -> ParseError {
    ParseError::new(
        ErrorKind::DuplicateOption,
        input,
        at,
        format!("Query option '{name}' was specified more than once, but it must be specified at most once."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_utf16_units() {
        let s = "a😀b";
        // byte 5 is 'b'; the emoji is 2 UTF-16 units.
        let e = syntax(s, 5);
        assert_eq!(e.byte_offset, 5);
        assert_eq!(e.position, 3);
        assert_eq!(e.message, "Syntax error at position 3 in 'a😀b'.");
    }

    #[test]
    fn offsets_are_clamped_to_char_boundaries() {
        let s = "é";
        let e = syntax(s, 1);
        assert_eq!(e.byte_offset, 0);
        let e = syntax(s, 99);
        assert_eq!(e.byte_offset, 2);
        assert_eq!(e.position, 1);
    }

    #[test]
    fn display_is_the_message() {
        let e = unterminated_literal("x'");
        assert_eq!(e.to_string(), "There is an unterminated literal at position 2 in 'x''.");
        assert_eq!(e.kind, ErrorKind::UnterminatedLiteral);
    }
}
