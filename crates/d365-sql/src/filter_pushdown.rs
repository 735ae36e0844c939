//! SQL filter expressions → OData `$filter`, and how faithfully each one translates.
//!
//! A translation is **exact** when the service returns exactly the rows DataFusion would keep,
//! and a **superset** when it may return more (DataFusion then filters again: `Inexact`).
//! Anything else is not sent at all (`Unsupported`: DataFusion evaluates it locally). The rules:
//!
//! - `NOT` is pushed inwards first (De Morgan; `NOT x > 5` is `x <= 5`, `NOT x IN (…)` is a
//!   chain of `ne`), so the service never sees `not`. Under SQL's three-valued logic this is an
//!   identity, and every leaf below keeps SQL's null semantics (`eq`/`ne`/`gt`… are never true
//!   for a null value, on the service as in SQL).
//! - Numbers, money, dates and instants, yes/no and choice values compare the same on both
//!   sides: exact. Decimal literals finer than the column's scale, non-finite floats and
//!   instants with fractions of a second are not pushed.
//! - **Text.** Dataverse compares text case-insensitively; DataFusion case-sensitively. For
//!   `=`, `IN` and `LIKE 'x%' / '%x' / '%x%'` the service's answer is a superset of the
//!   case-sensitive one, so they are pushed as `Inexact` and DataFusion re-checks every row:
//!   results are identical pushed or not, and still only (case-insensitively) matching rows
//!   travel. `<>`/`NOT LIKE` would be a *subset* (`name ne 'abc'` drops `'ABC'`, which
//!   `name <> 'abc'` keeps) and text ranges (`<`, `>`, `BETWEEN`) are neither a subset nor a
//!   superset (`'a_' > 'aB'` case-sensitively, but not case-insensitively), so those are never
//!   pushed. `ILIKE`, `LIKE … ESCAPE`, and patterns with other wildcards (`_`, inner `%`,
//!   `\`, `[`) are not pushed either.
//! - **GUIDs** (primary keys, lookups as `_x_value`) compare as GUIDs on the service and as
//!   text in SQL. A canonical lower-case literal (what the service returns) is exact for `=`
//!   and `<>`; any other spelling is a superset for `=` and not pushed for `<>`. GUID order
//!   differs, so ranges are not pushed.
//! - Virtual columns (`<col>name`, `<col>type`), multi-select choices and entity names are
//!   evaluated locally.
//! - `AND` of a pushable and a non-pushable part pushes the pushable part as a superset; `OR`
//!   needs both sides pushable.

use d365_client::string_literal;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{Between, InList, Like};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};

use crate::arrow_schema::{ColumnRole, ColumnSpec, Dialect, FilterKind, TableSchema, ValueKind};
use crate::values::{format_date, format_decimal, format_timestamp_whole_seconds, parse_decimal};

/// An OData `$filter` expression and whether it is exact (else a superset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ODataFilter {
    /// The expression (not percent-encoded).
    pub text: String,
    /// Whether the service returns exactly the rows SQL would keep.
    pub exact: bool,
}

/// How DataFusion should treat filter `expr` on `table`.
pub fn classify(expr: &Expr, table: &TableSchema) -> TableProviderFilterPushDown {
    match translate(expr, table) {
        Some(f) if f.exact => TableProviderFilterPushDown::Exact,
        Some(_) => TableProviderFilterPushDown::Inexact,
        None => TableProviderFilterPushDown::Unsupported,
    }
}

/// The `$filter` for `expr`, if any part of it can be sent.
pub fn translate(expr: &Expr, table: &TableSchema) -> Option<ODataFilter> {
    tr(expr, table, false)
}

/// The `$filter` for the conjunction of `filters` (each translated on its own).
pub fn translate_all(filters: &[Expr], table: &TableSchema) -> Option<ODataFilter> {
    filters.iter().map(|f| translate(f, table)).fold(None, |acc, f| match (acc, f) {
        (None, f) => f,
        (acc, None) => acc.map(|a| ODataFilter { exact: false, ..a }),
        (Some(a), Some(b)) => Some(and(a, b)),
    })
}

fn exact(text: String) -> Option<ODataFilter> {
    Some(ODataFilter { text, exact: true })
}

fn superset(text: String) -> Option<ODataFilter> {
    Some(ODataFilter { text, exact: false })
}

fn and(a: ODataFilter, b: ODataFilter) -> ODataFilter {
    ODataFilter { text: format!("({} and {})", a.text, b.text), exact: a.exact && b.exact }
}

fn tr(expr: &Expr, t: &TableSchema, neg: bool) -> Option<ODataFilter> {
    match expr {
        Expr::Not(inner) => tr(inner, t, !neg),
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::And | Operator::Or), right }) => {
            let conjunction = (*op == Operator::And) != neg;
            let (l, r) = (tr(left, t, neg), tr(right, t, neg));
            if conjunction {
                match (l, r) {
                    (Some(a), Some(b)) => Some(and(a, b)),
                    (Some(a), None) | (None, Some(a)) => superset(a.text),
                    (None, None) => None,
                }
            } else {
                let (a, b) = (l?, r?);
                Some(ODataFilter { text: format!("({} or {})", a.text, b.text), exact: a.exact && b.exact })
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => comparison(left, *op, right, t, neg),
        Expr::IsNull(e) | Expr::IsNotNull(e) => {
            let (c, _) = column(e, t)?;
            let is_null = matches!(expr, Expr::IsNull(_)) != neg;
            exact(format!("{} {} null", c.property, if is_null { "eq" } else { "ne" }))
        }
        Expr::IsTrue(e) | Expr::IsFalse(e) | Expr::IsNotTrue(e) | Expr::IsNotFalse(e) => {
            let (c, _) = column(e, t)?;
            if c.filter != FilterKind::Boolean {
                return None;
            }
            let (value, negated) = match expr {
                Expr::IsTrue(_) => (true, neg),
                Expr::IsFalse(_) => (false, neg),
                Expr::IsNotTrue(_) => (true, !neg),
                _ => (false, !neg),
            };
            let p = &c.property;
            if negated {
                // IS NOT TRUE holds for false and null.
                exact(format!("({p} eq {} or {p} eq null)", !value))
            } else {
                exact(format!("{p} eq {value}"))
            }
        }
        Expr::Column(_) => {
            let (c, _) = column(expr, t)?;
            (c.filter == FilterKind::Boolean)
                .then(|| ODataFilter { text: format!("{} eq {}", c.property, !neg), exact: true })
        }
        Expr::Between(Between { expr, negated, low, high }) => between(expr, low, high, neg != *negated, t),
        Expr::InList(InList { expr, list, negated }) => in_list(expr, list, neg != *negated, t),
        Expr::Like(like) => like_filter(like, neg, t),
        _ => None,
    }
}

/// The column behind `e` (through lossless casts), and the type it was cast to if any.
fn column<'t>(e: &Expr, t: &'t TableSchema) -> Option<(&'t ColumnSpec, Option<DataType>)> {
    match e {
        Expr::Column(c) => {
            let (_, spec) = t.column(&c.name)?;
            (spec.role == ColumnRole::Value && spec.filter != FilterKind::None).then_some((spec, None))
        }
        Expr::Cast(datafusion::logical_expr::Cast { expr, field })
        | Expr::TryCast(datafusion::logical_expr::TryCast { expr, field }) => {
            let (spec, inner) = column(expr, t)?;
            if inner.is_some() {
                return None;
            }
            let to = field.data_type();
            lossless_cast(spec.kind, to).then(|| (spec, Some(to.clone())))
        }
        _ => None,
    }
}

/// Whether casting a column of `from` to `to` keeps order and equality of every value.
fn lossless_cast(from: ValueKind, to: &DataType) -> bool {
    use DataType as D;
    match (from, to) {
        (ValueKind::Int32, D::Int64 | D::Float64) => true,
        (ValueKind::Int32, D::Decimal128(p, s)) => i16::from(*p) - i16::from(*s) >= 10,
        (ValueKind::Int64, D::Decimal128(p, s)) => i16::from(*p) - i16::from(*s) >= 19,
        (ValueKind::Decimal { scale }, D::Decimal128(_, s)) => *s >= scale,
        // Checked against the literal in `decimal_literal`.
        (ValueKind::Decimal { .. }, D::Float64) => true,
        (ValueKind::Timestamp, D::Timestamp(unit, _)) => {
            matches!(
                unit,
                datafusion::arrow::datatypes::TimeUnit::Microsecond
                    | datafusion::arrow::datatypes::TimeUnit::Nanosecond
            )
        }
        (ValueKind::Utf8, D::Utf8 | D::Utf8View | D::LargeUtf8) => true,
        _ => false,
    }
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) if !v.is_null() => Some(v),
        _ => None,
    }
}

fn negate(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq => Operator::NotEq,
        Operator::NotEq => Operator::Eq,
        Operator::Lt => Operator::GtEq,
        Operator::LtEq => Operator::Gt,
        Operator::Gt => Operator::LtEq,
        Operator::GtEq => Operator::Lt,
        _ => return None,
    })
}

fn flip(op: Operator) -> Operator {
    match op {
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        other => other,
    }
}

fn odata_op(op: Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "eq",
        Operator::NotEq => "ne",
        Operator::Lt => "lt",
        Operator::LtEq => "le",
        Operator::Gt => "gt",
        Operator::GtEq => "ge",
        _ => return None,
    })
}

fn comparison(left: &Expr, op: Operator, right: &Expr, t: &TableSchema, neg: bool) -> Option<ODataFilter> {
    let (col_expr, value, op) = match (literal(left), literal(right)) {
        (None, Some(v)) => (left, v, op),
        (Some(v), None) => (right, v, flip(op)),
        _ => return None,
    };
    let op = if neg { negate(op)? } else { op };
    let name = odata_op(op)?;
    let (c, _) = column(col_expr, t)?;
    let lit = literal_for(c, value, t)?;
    let p = &c.property;
    let text = format!("{p} {name} {}", lit.text);
    match c.filter {
        FilterKind::Enum => matches!(op, Operator::Eq | Operator::NotEq).then_some(ODataFilter { text, exact: true }),
        FilterKind::Text => (op == Operator::Eq).then_some(ODataFilter { text, exact: false }),
        FilterKind::Guid => match op {
            Operator::Eq => Some(ODataFilter { text, exact: lit.canonical }),
            Operator::NotEq if lit.canonical => exact(text),
            _ => None,
        },
        FilterKind::Boolean => {
            matches!(op, Operator::Eq | Operator::NotEq).then_some(ODataFilter { text, exact: true })
        }
        _ => exact(text),
    }
}

/// A literal in OData syntax for column `c`.
struct Lit {
    text: String,
    /// For GUIDs: whether the SQL text is the canonical lower-case form.
    canonical: bool,
}

/// The value of an integer-typed scalar (signed or unsigned, any width).
pub(crate) fn int_value(v: &ScalarValue) -> Option<i128> {
    Some(match v {
        ScalarValue::Int8(Some(x)) => i128::from(*x),
        ScalarValue::Int16(Some(x)) => i128::from(*x),
        ScalarValue::Int32(Some(x)) => i128::from(*x),
        ScalarValue::Int64(Some(x)) => i128::from(*x),
        ScalarValue::UInt8(Some(x)) => i128::from(*x),
        ScalarValue::UInt16(Some(x)) => i128::from(*x),
        ScalarValue::UInt32(Some(x)) => i128::from(*x),
        ScalarValue::UInt64(Some(x)) => i128::from(*x),
        _ => return None,
    })
}

fn str_value(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => Some(s),
        _ => None,
    }
}

fn float_value(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Float64(Some(x)) => Some(*x),
        ScalarValue::Float32(Some(x)) => Some(f64::from(*x)),
        _ => None,
    }
}

/// A decimal literal as (scaled value, scale).
fn decimal_value(v: &ScalarValue) -> Option<(i128, i8)> {
    match v {
        ScalarValue::Decimal128(Some(x), _, s) => Some((*x, *s)),
        ScalarValue::Decimal64(Some(x), _, s) => Some((i128::from(*x), *s)),
        ScalarValue::Decimal32(Some(x), _, s) => Some((i128::from(*x), *s)),
        _ => int_value(v).map(|x| (x, 0)),
    }
}

/// Rescales a decimal to `scale` digits, if that loses nothing.
fn rescale(value: i128, from: i8, to: i8) -> Option<i128> {
    if from == to {
        return Some(value);
    }
    if from < to {
        return value.checked_mul(10i128.checked_pow(u32::from((to - from).unsigned_abs()))?);
    }
    let p = 10i128.checked_pow(u32::from((from - to).unsigned_abs()))?;
    (value % p == 0).then_some(value / p)
}

/// The literal of `v` for column `c` in the table's dialect. Finance & Operations writes enum
/// values as `Microsoft.Dynamics.DataEntities.T'Member'` (only members: any other text matches
/// no row in SQL and would be refused by the service), dates as midday UTC (how date fields
/// are stored and sent), and reads `*` in a string as a wildcard (such strings are not sent).
fn literal_for(c: &ColumnSpec, v: &ScalarValue, t: &TableSchema) -> Option<Lit> {
    if t.dialect != Dialect::FinOps {
        return odata_literal(c, v);
    }
    match c.filter {
        FilterKind::Enum => {
            let e = t.enums.get(&c.property)?;
            let s = str_value(v)?;
            e.members
                .iter()
                .any(|m| m == s)
                .then(|| Lit { text: format!("Microsoft.Dynamics.DataEntities.{}'{s}'", e.name), canonical: true })
        }
        FilterKind::Date => {
            let ScalarValue::Date32(Some(d)) = v else { return None };
            Some(Lit { text: format!("{}T12:00:00Z", format_date(*d)?), canonical: true })
        }
        FilterKind::Text if str_value(v)?.contains('*') => None,
        _ => odata_literal(c, v),
    }
}

fn odata_literal(c: &ColumnSpec, v: &ScalarValue) -> Option<Lit> {
    let plain = |text: String| Some(Lit { text, canonical: true });
    match c.filter {
        FilterKind::Integer => {
            if let Some(i) = int_value(v) {
                return plain(i.to_string());
            }
            if let Some((x, s)) = decimal_value(v) {
                return plain(rescale(x, s, 0)?.to_string());
            }
            let f = float_value(v)?;
            (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
                .then(|| Lit { text: format!("{}", f as i64), canonical: true })
        }
        FilterKind::Decimal => {
            let ValueKind::Decimal { scale } = c.kind else { return None };
            decimal_literal(v, scale).and_then(plain)
        }
        FilterKind::Float => {
            let f = float_value(v).or_else(|| int_value(v).map(|i| i as f64))?;
            // `{}` prints the shortest text that parses back to the same f64, without exponent.
            f.is_finite().then(|| Lit { text: format!("{f}"), canonical: true })
        }
        FilterKind::Boolean => match v {
            ScalarValue::Boolean(Some(b)) => plain(b.to_string()),
            _ => None,
        },
        FilterKind::Timestamp => {
            let micros = match v {
                ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1_000_000)?,
                ScalarValue::TimestampMillisecond(Some(x), _) => x.checked_mul(1000)?,
                ScalarValue::TimestampMicrosecond(Some(x), _) => *x,
                ScalarValue::TimestampNanosecond(Some(x), _) => {
                    if x % 1000 != 0 {
                        return None;
                    }
                    x / 1000
                }
                _ => return None,
            };
            format_timestamp_whole_seconds(micros).and_then(plain)
        }
        FilterKind::Date => match v {
            ScalarValue::Date32(Some(d)) => format_date(*d).and_then(plain),
            _ => None,
        },
        FilterKind::Text => plain(string_literal(str_value(v)?)),
        FilterKind::Guid => {
            let s = str_value(v)?;
            let canonical_text = canonical_guid(s)?;
            Some(Lit { canonical: canonical_text == s, text: canonical_text })
        }
        FilterKind::None | FilterKind::Enum => None,
    }
}

fn decimal_literal(v: &ScalarValue, scale: i8) -> Option<String> {
    if let Some((x, s)) = decimal_value(v) {
        return Some(format_decimal(rescale(x, s, scale)?, scale));
    }
    // A float literal compared with a decimal column cast to Float64: exact when the float is
    // a decimal of the column's scale and small enough that distinct column values never
    // round to the same f64 (|x| < 2^52 / 10^scale).
    let f = float_value(v)?;
    let limit = 4_503_599_627_370_496f64 / 10f64.powi(i32::from(scale));
    if !f.is_finite() || f.abs() >= limit {
        return None;
    }
    let scaled = parse_decimal(&format!("{f}"), u8::try_from(scale).ok()?)?;
    let text = format_decimal(scaled, scale);
    (text.parse::<f64>().ok()? == f).then_some(text)
}

/// The canonical (lower-case, hyphenated) form of a GUID written in any usual way.
pub(crate) fn canonical_guid(s: &str) -> Option<String> {
    let t = s.trim().trim_start_matches('{').trim_end_matches('}');
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let dashes: Vec<usize> = t.char_indices().filter(|(_, c)| *c == '-').map(|(i, _)| i).collect();
    if !dashes.is_empty() && dashes != [8, 13, 18, 23] {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

fn in_list(e: &Expr, list: &[Expr], negated: bool, t: &TableSchema) -> Option<ODataFilter> {
    let (c, _) = column(e, t)?;
    if list.is_empty() || list.len() > 500 {
        return None;
    }
    let lits: Vec<Lit> = list.iter().map(|x| literal(x).and_then(|v| literal_for(c, v, t))).collect::<Option<_>>()?;
    let p = &c.property;
    let all_canonical = lits.iter().all(|l| l.canonical);
    if t.dialect == Dialect::FinOps {
        // No `in` there: a chain of `eq` (or of `ne` for NOT IN).
        if (c.filter == FilterKind::Text && negated) || c.filter == FilterKind::Boolean || lits.len() > 100 {
            return None;
        }
        let (op, join) = if negated { ("ne", " and ") } else { ("eq", " or ") };
        let parts: Vec<String> = lits.iter().map(|l| format!("{p} {op} {}", l.text)).collect();
        let text = if parts.len() == 1 { parts.join("") } else { format!("({})", parts.join(join)) };
        return Some(ODataFilter {
            text,
            exact: c.filter != FilterKind::Text && (c.filter != FilterKind::Guid || all_canonical),
        });
    }
    match (c.filter, negated) {
        (FilterKind::Text, true) | (FilterKind::Boolean, _) => None,
        (FilterKind::Guid, true) if !all_canonical => None,
        (FilterKind::Guid, _) | (_, true) => {
            let (op, join) = if negated { ("ne", " and ") } else { ("eq", " or ") };
            let parts: Vec<String> = lits.iter().map(|l| format!("{p} {op} {}", l.text)).collect();
            let text = if parts.len() == 1 { parts.join("") } else { format!("({})", parts.join(join)) };
            Some(ODataFilter { text, exact: c.filter != FilterKind::Guid || all_canonical })
        }
        (kind, false) => {
            let values: Vec<String> = lits.iter().map(|l| query_function_value(&l.text)).collect();
            let text = format!("Microsoft.Dynamics.CRM.In(PropertyName='{p}',PropertyValues=[{}])", values.join(","));
            Some(ODataFilter { text, exact: kind != FilterKind::Text })
        }
    }
}

/// A query function parameter value: a string literal stays as it is, anything else is quoted
/// (`PropertyValues=['1','2']`, as the Dataverse documentation writes them).
fn query_function_value(lit: &str) -> String {
    if lit.starts_with('\'') { lit.to_string() } else { string_literal(lit) }
}

fn between(e: &Expr, low: &Expr, high: &Expr, negated: bool, t: &TableSchema) -> Option<ODataFilter> {
    let (c, _) = column(e, t)?;
    if matches!(c.filter, FilterKind::Text | FilterKind::Guid | FilterKind::Boolean | FilterKind::Enum) {
        return None;
    }
    let lo = literal_for(c, literal(low)?, t)?;
    let hi = literal_for(c, literal(high)?, t)?;
    let p = &c.property;
    if t.dialect == Dialect::FinOps && !negated {
        return exact(format!("({p} ge {} and {p} le {})", lo.text, hi.text));
    }
    if negated {
        exact(format!("({p} lt {} or {p} gt {})", lo.text, hi.text))
    } else {
        exact(format!(
            "Microsoft.Dynamics.CRM.Between(PropertyName='{p}',PropertyValues=[{},{}])",
            query_function_value(&lo.text),
            query_function_value(&hi.text)
        ))
    }
}

fn like_filter(like: &Like, neg: bool, t: &TableSchema) -> Option<ODataFilter> {
    if neg != like.negated || like.case_insensitive || like.escape_char.is_some() {
        return None;
    }
    let (c, _) = column(&like.expr, t)?;
    if c.filter != FilterKind::Text {
        return None;
    }
    let pattern = str_value(literal(&like.pattern)?)?;
    let p = &c.property;
    if pattern.chars().all(|ch| ch == '%') && !pattern.is_empty() {
        // Matches every non-null value.
        return exact(format!("{p} ne null"));
    }
    let starts = pattern.starts_with('%');
    let ends = pattern.len() > 1 && pattern.ends_with('%');
    let inner = pattern.trim_start_matches('%').trim_end_matches('%');
    let inner = match (starts, ends) {
        (true, true) => pattern.get(1..pattern.len() - 1)?,
        (true, false) => pattern.get(1..)?,
        (false, true) => pattern.get(..pattern.len() - 1)?,
        (false, false) => inner,
    };
    if inner.is_empty() || inner.contains(['%', '_', '\\', '[']) {
        return None;
    }
    if t.dialect == Dialect::FinOps {
        // Finance & Operations has no string functions: `eq` with `*` wildcards (a superset:
        // the service compares without regard to case).
        if inner.contains('*') {
            return None;
        }
        let lead = if starts { "*" } else { "" };
        let tail = if ends { "*" } else { "" };
        return superset(format!("{p} eq {}", string_literal(&format!("{lead}{inner}{tail}"))));
    }
    let value = string_literal(inner);
    let text = match (starts, ends) {
        (true, true) => format!("contains({p},{value})"),
        (true, false) => format!("endswith({p},{value})"),
        (false, true) => format!("startswith({p},{value})"),
        (false, false) => format!("{p} eq {value}"),
    };
    superset(text)
}

#[cfg(test)]
#[path = "filter_pushdown_tests.rs"]
pub(crate) mod tests;
