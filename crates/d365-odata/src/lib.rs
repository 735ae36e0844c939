//! A pure parser for the OData v4.0 query options that the Microsoft Dataverse Web API accepts:
//! `$filter`, `$select`, `$orderby`, `$top`, `$count`, `$expand` and `$apply`, plus parameter
//! aliases. It follows ODataLib (the library behind Dataverse) for grammar, precedence and error
//! wording, so that an emulator can answer bad queries the way Dataverse does. It does **not**
//! know any schema: property names, function names and types are checked by the consumer.
//!
//! Input is the already percent-decoded option value (`+` already turned into a space by the
//! caller). Whitespace between tokens is free. No input makes the parser panic; nesting is
//! bounded by [`MAX_DEPTH`].
//!
//! # Entry points
//!
//! | option | function | result |
//! |---|---|---|
//! | `$filter` | [`parse_filter`] | [`Expr`] |
//! | `$orderby` | [`parse_orderby`] | `Vec<`[`OrderByItem`]`>` |
//! | `$select` | [`parse_select`] | `Vec<String>` |
//! | `$top` | [`parse_top`] | `u64` |
//! | `$count` | [`parse_count`] | `bool` |
//! | `$expand` | [`parse_expand`] | `Vec<`[`ExpandItem`]`>` |
//! | `$apply` | [`parse_apply`] | `Vec<`[`Transformation`]`>` |
//! | all of a request | [`QueryOptions::parse`] | [`QueryOptions`] |
//! | `fetchXml` | [`fetchxml::parse_fetchxml`] | [`fetchxml::Fetch`] |
//!
//! # The expression AST ([`Expr`])
//!
//! Designed for translation to SQL by a recursive walk:
//!
//! * **Logic** — [`Expr::And`] / [`Expr::Or`] hold *two or more* operands (a chain `a or b or c`
//!   is one flat node, so long `or` lists do not nest), [`Expr::Not`] one. Precedence, loosest
//!   first: `or` < `and` < comparison (`eq ne gt ge lt le`, `has`) < `add sub` < `mul div mod` <
//!   unary `not` / `-` < primary. As in ODataLib, **`not` binds tighter than a comparison**:
//!   `not a eq b` is `Compare(Not(a), b)` (Dataverse then rejects it); `not (a eq b)` and
//!   `not contains(…)` are the working forms.
//! * **Comparisons** — [`Expr::Compare`] `{ op, left, right }`; either side may be a path, a
//!   literal or a function call (`firstname eq lastname` compares two columns).
//!   [`Expr::Has`] and [`Expr::Arith`] (`add sub mul div mod`) and [`Expr::Negate`] are parsed
//!   so that the consumer can refuse them as Dataverse does.
//! * **Values** — [`Expr::Literal`] with a [`Literal`]: `Null`, `Bool`, `String` (quotes
//!   unescaped), `Int(i64)`, `Number { text, kind }` (decimals/doubles keep the text as written),
//!   `Guid` (unquoted, lower-cased), `Date`, `DateTimeOffset` (with
//!   [`DateTimeOffset::to_utc_string`]), `Duration`, `Enum { type_name, value }`
//!   (`Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'`). `- 5` is folded into `Int(-5)`.
//!   [`Expr::Array`] is a JSON-style array (`["a","b"]` / `['a','b']`) of literals.
//! * **Paths** — [`Expr::Path`] with a [`PropertyPath`] `{ variable, segments }`: `name` →
//!   `[name]`; `primarycontactid/fullname` → `[primarycontactid, fullname]` (N:1 hops);
//!   `t/statecode` inside a lambda → `variable: Some("t"), [statecode]`.
//! * **Lambdas** — [`Expr::Lambda`]: `Account_Tasks/any(t:t/statecode eq 1)` → collection path
//!   `[Account_Tasks]`, kind `Any`, variable `t`, predicate. Nested lambdas reference outer
//!   variables through their own paths. `nav/any()` has no variable or predicate.
//! * **Functions** — [`Expr::Call`] `{ name, args }` for positional calls (`contains`,
//!   `startswith`, `endswith`, `tolower`, `year`, … — any name, case preserved; the consumer
//!   decides). [`Expr::QueryFunction`] for named-parameter calls, i.e. Dataverse query functions:
//!   `Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=['1','2'])` → name
//!   `Microsoft.Dynamics.CRM.In`, params `[("PropertyName", 'statuscode'), ("PropertyValues",
//!   Array)]` (see [`QueryFunction::short_name`] / [`QueryFunction::param`]).
//! * **Parameter aliases** — `@p1` is replaced by its parsed value from [`Aliases`] (a literal,
//!   array, path or any expression); an unassigned alias becomes `Literal::Null`. The AST never
//!   contains an alias. Aliases are refused inside `$expand`, as on Dataverse.
//!
//! `Display` on [`Expr`] prints OData text that parses back to the same tree (binary operators
//! fully parenthesised).
//!
//! # Errors
//!
//! [`ParseError`] carries an [`ErrorKind`], the Dataverse-worded message
//! (`There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''.`,
//! `Syntax error at position 7 in 'name eq'.`, `')' or ',' expected at position N in '…'.`),
//! and the position (UTF-16 units, as .NET prints it, plus the byte offset).
//!
//! # Example
//!
//! ```
//! use d365_odata::{parse_filter, Aliases, CompareOp, Expr, Literal};
//!
//! let aliases = Aliases::from_pairs([("@p1", "'lastname'")]);
//! let e = parse_filter("statecode eq 0 and Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=[\"O'Brian\"])", &aliases).unwrap();
//! let Expr::And(items) = e else { panic!() };
//! assert!(matches!(&items[0], Expr::Compare { op: CompareOp::Eq, .. }));
//! let Expr::QueryFunction(f) = &items[1] else { panic!() };
//! assert_eq!(f.short_name(), "In");
//! assert_eq!(f.param("PropertyName"), Some(&Expr::Literal(Literal::String("lastname".into()))));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ast;
mod datetime;
mod error;
pub mod fetchxml;
mod json;
mod lexer;
mod options;
mod parser;
mod select_expand;

#[cfg(test)]
mod tests;

pub use ast::*;
pub use error::{ErrorKind, ParseError};
pub use options::{Aliases, QueryOptions, QueryPair, parse_count, parse_top};

/// Maximum nesting depth: parentheses, function calls, lambdas, unary operators, chained
/// comparison/arithmetic operators, alias indirections and nested `$expand`s each count one
/// level. Beyond it parsing fails with `Recursion depth exceeded allowed limit.`
/// ([`ErrorKind::TooDeep`]). Flat `and`/`or` chains do not count.
pub const MAX_DEPTH: usize = 100;

/// Parses a `$filter` value.
pub fn parse_filter(input: &str, aliases: &Aliases) -> Result<Expr, ParseError> {
    let mut ctx = parser::AliasCtx::new(aliases);
    let mut p = parser::Parser::new(input, Some(&mut ctx), 0)?;
    let e = p.parse_expr()?;
    p.expect_end()?;
    Ok(e)
}

/// Parses an `$orderby` value: comma-separated expressions, each optionally followed by
/// `asc` / `desc`. Aliases are allowed (`$orderby=@p1 asc&@p1=revenue`).
pub fn parse_orderby(input: &str, aliases: &Aliases) -> Result<Vec<OrderByItem>, ParseError> {
    let mut ctx = parser::AliasCtx::new(aliases);
    let mut p = parser::Parser::new(input, Some(&mut ctx), 0)?;
    p.parse_orderby()
}

/// Parses a `$select` value: comma-separated identifiers (no empty items, no paths, no `*`).
pub fn parse_select(input: &str) -> Result<Vec<String>, ParseError> {
    select_expand::parse_select(input)
}

/// Parses an `$expand` value: comma-separated navigation properties, each optionally `/$ref`
/// and/or followed by `(` `$select` / `$filter` / `$orderby` / `$top` / `$expand` options
/// separated by `;` `)`. Other options inside the parentheses (`$skip`, `$count`, `$levels`,
/// `$search`, …) and parameter aliases are refused ([`ErrorKind::Unsupported`]). Errors inside a
/// nested option are reported against that option's text, as ODataLib does.
pub fn parse_expand(input: &str) -> Result<Vec<ExpandItem>, ParseError> {
    select_expand::parse_expand(input, 0)
}

/// Parses an `$apply` value: `/`-separated `filter(…)`, `groupby((…)[,aggregate(…)])`,
/// `aggregate(…)`. An empty value yields no transformations.
pub fn parse_apply(input: &str, aliases: &Aliases) -> Result<Vec<Transformation>, ParseError> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let mut ctx = parser::AliasCtx::new(aliases);
    let mut p = parser::Parser::new(input, Some(&mut ctx), 0)?;
    p.parse_apply()
}
