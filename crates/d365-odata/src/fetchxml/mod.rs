//! A pure parser for FetchXML, Dataverse's XML query language, as sent to the Web API in
//! `GET [API]/<entityset>?fetchXml=…`. It turns the text into a typed tree ([`Fetch`]) and
//! checks what the FetchXML schema checks: well-formed XML (no DTD), known elements in their
//! places, known attributes, enumerations (`operator`, `link-type`, `aggregate`,
//! `dategrouping`, filter `type`), positive numbers (`count`, `page`, `top`,
//! `aggregatelimit`), booleans, and the number of values each condition operator takes. It
//! knows no schema: whether tables, columns and aliases exist, and whether values have the
//! right type, is for the consumer to check. No input makes it panic; nesting of filters and
//! link-entities is bounded by [`MAX_DEPTH`].
//!
//! ```
//! use d365_odata::fetchxml::{parse_fetchxml, Operator, FilterItem};
//!
//! let f = parse_fetchxml("<fetch top='5'><entity name='account'><attribute name='name'/>\
//!     <filter type='or'><condition attribute='revenue' operator='gt' value='1000'/>\
//!     <condition attribute='statecode' operator='in'><value>0</value><value>1</value></condition>\
//!     </filter></entity></fetch>").unwrap();
//! assert_eq!(f.top, Some(5));
//! assert_eq!(f.entity.name, "account");
//! let FilterItem::Condition(c) = &f.entity.node.filters[0].items[1] else { panic!() };
//! assert_eq!(c.operator, Operator::In);
//! assert_eq!(c.values, ["0", "1"]);
//! ```

mod ast;
mod parse;

#[cfg(test)]
mod tests;

pub use ast::*;

/// Deepest nesting of `filter` / `link-entity` elements accepted.
pub const MAX_DEPTH: usize = 64;

/// What kind of structural error a [`FetchXmlError`] is, for mapping to service error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FetchXmlErrorKind {
    /// Not well-formed XML (or a DTD).
    InvalidXml,
    /// An element that is unknown or not allowed where it is (text content included).
    InvalidNode,
    /// An attribute the element does not declare.
    InvalidAttribute,
    /// A required attribute is missing.
    MissingAttribute,
    /// An attribute value of the wrong form (boolean, positive number, `mapping`, ...).
    InvalidValue,
    /// An unknown condition `operator`.
    InvalidOperator,
    /// A filter `type` other than `and` / `or`.
    InvalidFilterType,
    /// An unknown `link-type`, or one not allowed where it is.
    InvalidLinkType,
    /// An unknown `aggregate` function.
    InvalidAggregate,
    /// A condition with the wrong number of values for its operator.
    InvalidValueCount,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// A FetchXML document that cannot be a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchXmlError {
    /// Classification.
    pub kind: FetchXmlErrorKind,
    /// Human-readable message.
    pub message: String,
}

/// Escapes text for a double-quoted (or single-quoted) XML attribute value or element
/// content: `&`, `<`, `>`, `"` and `'`.
pub fn xml_escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Parses a FetchXML query (the `fetchXml` query option, already URL-decoded).
pub fn parse_fetchxml(text: &str) -> Result<Fetch, FetchXmlError> {
    parse::parse(text)
}
