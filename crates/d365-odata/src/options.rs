//! Parameter aliases, `$top`, `$count`, and the all-options convenience parser.

use std::collections::HashMap;

use crate::ast::{ExpandItem, Expr, OrderByItem, Transformation};
use crate::error::{self, ErrorKind, ParseError};

/// A `(name, value)` query-string pair: `(K, V)` or `&(K, V)` with `K, V: AsRef<str>`, so
/// `&[(String, String)]`, `Vec<(&str, &str)>`, `form_urlencoded::parse(..)` all work.
pub trait QueryPair {
    /// The (decoded) name.
    fn name(&self) -> &str;
    /// The (decoded) value.
    fn value(&self) -> &str;
}

impl<K: AsRef<str>, V: AsRef<str>> QueryPair for (K, V) {
    fn name(&self) -> &str {
        self.0.as_ref()
    }
    fn value(&self) -> &str {
        self.1.as_ref()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> QueryPair for &(K, V) {
    fn name(&self) -> &str {
        self.0.as_ref()
    }
    fn value(&self) -> &str {
        self.1.as_ref()
    }
}

/// Parameter-alias values from the query string (`@p1='lastname'`, `@p2=["a","b"]`).
///
/// Values are raw (already percent-decoded) text; they are parsed lazily, as expressions, only
/// when an alias is used. Names are stored with their leading `@`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases {
    map: HashMap<String, String>,
}

impl Aliases {
    /// No aliases.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the pairs whose name starts with `@` (later duplicates win). Accepts e.g.
    /// `&[(String, String)]`, `Vec<(&str, &str)>` or a `form_urlencoded` parser.
    pub fn from_pairs<I>(pairs: I) -> Self
    where
        I: IntoIterator,
        I::Item: QueryPair,
    {
        let mut a = Self::new();
        for p in pairs {
            if p.name().starts_with('@') {
                a.insert(p.name(), p.value());
            }
        }
        a
    }

    /// Adds or replaces an alias; `name` may be given with or without the `@`.
    pub fn insert(&mut self, name: impl AsRef<str>, value: impl Into<String>) {
        let name = name.as_ref();
        let key = if name.starts_with('@') { name.to_string() } else { format!("@{name}") };
        self.map.insert(key, value.into());
    }

    /// The raw value of `@name` (`name` with or without the `@`).
    pub fn get(&self, name: &str) -> Option<&str> {
        if name.starts_with('@') { self.map.get(name) } else { self.map.get(&format!("@{name}")) }.map(String::as_str)
    }

    /// Number of aliases.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// `$top=N`: a non-negative integer (surrounding whitespace and a leading `+` are tolerated, as
/// .NET's `long.TryParse` does).
pub fn parse_top(input: &str) -> Result<u64, ParseError> {
    let t = input.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    match digits.parse::<u64>() {
        Ok(n) if n <= i64::MAX as u64 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(ParseError::new(
            ErrorKind::InvalidValue,
            input,
            0,
            format!(
                "Invalid value '{input}' for $top query option found. The $top query option requires a non-negative integer value."
            ),
        )),
    }
}

/// `$count=true|false` (exact lower case; surrounding whitespace tolerated).
pub fn parse_count(input: &str) -> Result<bool, ParseError> {
    match input.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ParseError::new(ErrorKind::InvalidValue, input, 0, format!("'{input}' is not a valid count option."))),
    }
}

/// All query options of a request, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryOptions {
    /// `$select`
    pub select: Option<Vec<String>>,
    /// `$filter`
    pub filter: Option<Expr>,
    /// `$orderby`
    pub orderby: Option<Vec<OrderByItem>>,
    /// `$top`
    pub top: Option<u64>,
    /// `$count`
    pub count: Option<bool>,
    /// `$expand`
    pub expand: Option<Vec<ExpandItem>>,
    /// `$apply`
    pub apply: Option<Vec<Transformation>>,
    /// Parameter aliases (`@name=value`).
    pub aliases: Aliases,
    /// Every other pair, untouched and in order (`$skiptoken`, `$skip`, `$search`, custom
    /// options, misspelt/upper-case names — option names are case-sensitive, as in ODataLib).
    pub other: Vec<(String, String)>,
}

impl QueryOptions {
    /// Parses decoded `(name, value)` pairs. A repeated system option is an error
    /// (`Query option '$filter' was specified more than once, but it must be specified at most once.`).
    pub fn parse<I>(pairs: I) -> Result<Self, ParseError>
    where
        I: IntoIterator,
        I::Item: QueryPair,
    {
        let pairs: Vec<(String, String)> =
            pairs.into_iter().map(|p| (p.name().to_string(), p.value().to_string())).collect();
        let mut q = QueryOptions { aliases: Aliases::from_pairs(&pairs), ..Default::default() };
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in &pairs {
            let name = k.as_str();
            let known = matches!(name, "$select" | "$filter" | "$orderby" | "$top" | "$count" | "$expand" | "$apply");
            if !known {
                if !name.starts_with('@') {
                    q.other.push((k.clone(), v.clone()));
                }
                continue;
            }
            if seen.contains(&name) {
                return Err(error::duplicate_option(k, 0, name));
            }
            seen.push(name);
            match name {
                "$select" => q.select = Some(crate::parse_select(v)?),
                "$filter" => q.filter = Some(crate::parse_filter(v, &q.aliases)?),
                "$orderby" => q.orderby = Some(crate::parse_orderby(v, &q.aliases)?),
                "$top" => q.top = Some(parse_top(v)?),
                "$count" => q.count = Some(parse_count(v)?),
                "$expand" => q.expand = Some(crate::parse_expand(v)?),
                _ => q.apply = Some(crate::parse_apply(v, &q.aliases)?),
            }
        }
        Ok(q)
    }
}
