//! AST types. See the crate documentation for an overview.

use std::fmt::{self, Display, Write as _};

/// A `$filter` (or `$orderby` / `$apply` filter / function-argument) expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A primitive literal. Parameter aliases are already substituted (unassigned → `Null`).
    Literal(Literal),
    /// A JSON-style array (`["a","b"]`, `['1','2']`), as used by `PropertyValues=`.
    /// Items are only strings, numbers, booleans and null.
    Array(Vec<Literal>),
    /// A property path: `name`, `primarycontactid/fullname`, `t/statecode` (lambda variable `t`).
    Path(PropertyPath),
    /// `not e`. **Binds tighter than comparisons**, as in ODataLib: `not a eq b` is
    /// `(not a) eq b`; write `not (a eq b)` or `not contains(…)`.
    Not(Box<Expr>),
    /// Unary minus applied to a non-literal (`-(a)`); `-5` / `- 5` are folded into the literal.
    Negate(Box<Expr>),
    /// `a and b and c`: two or more operands, flattened for a chain at one level.
    And(Vec<Expr>),
    /// `a or b or c`: two or more operands, flattened for a chain at one level.
    Or(Vec<Expr>),
    /// `left op right` with `eq ne gt ge lt le`.
    Compare {
        /// Operator.
        op: CompareOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `left has right` (flags-enum test; Dataverse does not support it).
    Has {
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `left op right` with `add sub mul div mod` (Dataverse rejects arithmetic).
    Arith {
        /// Operator.
        op: ArithOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// A call with positional arguments: `contains(name,'x')`, `tolower(name)`, `now()`.
    /// `name` is as written (case preserved); the consumer decides what it supports.
    Call {
        /// Function name as written (may be dotted).
        name: String,
        /// Positional arguments.
        args: Vec<Expr>,
    },
    /// A call with named parameters, i.e. a Dataverse query function:
    /// `Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=['1','2'])`.
    /// A qualified (dotted) name with empty parentheses also lands here.
    QueryFunction(QueryFunction),
    /// `collection/any(v: predicate)` or `collection/all(v: predicate)`.
    Lambda(Lambda),
}

/// A primitive literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `null` (also what an unassigned parameter alias becomes).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// `'text'` (with `''` unescaped) or, inside arrays, a JSON string `"te\"xt"` / `'text'`.
    String(String),
    /// An integer that fits `i64` (`42`, `-7`, `42L`).
    Int(i64),
    /// Any other number. `text` is exactly as written (sign and suffix included), e.g. `1.5`,
    /// `-2.5e3`, `3.0m`, `INF`, `-INF`, `NaN`, or an integer too large for `i64`.
    Number {
        /// Original text.
        text: String,
        /// What the literal's form says it is.
        kind: NumberKind,
    },
    /// An unquoted GUID (`7a914942-34cb-ed11-b596-0022481d68cd`), normalised to lower case.
    Guid(String),
    /// `2023-01-01`.
    Date(Date),
    /// `2023-01-01T00:00:00Z`, `2023-01-01T10:30:00.123+02:00`, `2023-01-01T10:30Z`.
    DateTimeOffset(DateTimeOffset),
    /// `duration'P1DT2H'` (the quoted text, unescaped).
    Duration(String),
    /// An enum member: `Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'` →
    /// `type_name = "Microsoft.Dynamics.CRM.AttributeTypeCode"`, `value = "Picklist"`
    /// (flags: `'A,B'`). Any dotted name followed directly by a quote is accepted here.
    Enum {
        /// Qualified type name.
        type_name: String,
        /// Member name(s), unescaped.
        value: String,
    },
}

/// The form of a non-integer number literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberKind {
    /// `1.5`, `1.5m`, or an integer beyond `i64`.
    Decimal,
    /// `1e5`, `1.5d`, `INF`, `NaN`.
    Double,
    /// `1.5f`.
    Single,
}

/// A calendar date (`Edm.Date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    /// 1..=9999.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31 (validated against the month).
    pub day: u8,
}

/// An `Edm.DateTimeOffset` literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateTimeOffset {
    /// Local date.
    pub date: Date,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59 (0 when omitted).
    pub second: u8,
    /// Fraction of a second in nanoseconds (at most 7 fractional digits are accepted).
    pub nanosecond: u32,
    /// Offset from UTC in minutes (`Z` = 0, `+02:00` = 120), within ±14:00.
    pub offset_minutes: i16,
    /// The literal as written.
    pub text: String,
}

/// `segments` below an optional root: a lambda range variable (or `$it`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PropertyPath {
    /// `Some("t")` when the path starts with an in-scope lambda variable (`t/statecode`),
    /// `Some("$it")` for an explicit `$it/…`; `None` for the current entity.
    pub variable: Option<String>,
    /// Property / navigation names (possibly dotted type casts). Empty only when the path is
    /// just a variable (`t` in `tags/any(t: t eq 'x')`).
    pub segments: Vec<String>,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

impl CompareOp {
    /// The SQL operator (`=`, `<>`, `>`, `>=`, `<`, `<=`).
    pub fn sql(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
        }
    }

    /// The operator with its operands swapped (`5 lt x` is `x gt 5`).
    pub fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Ge => CompareOp::Le,
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Le => CompareOp::Ge,
            other => other,
        }
    }
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `add`
    Add,
    /// `sub`
    Sub,
    /// `mul`
    Mul,
    /// `div`
    Div,
    /// `mod`
    Mod,
}

/// `any` or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LambdaKind {
    /// `any`
    Any,
    /// `all`
    All,
}

/// `collection/any(variable: predicate)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lambda {
    /// The collection-valued navigation path the lambda ranges over.
    pub collection: PropertyPath,
    /// `any` / `all`.
    pub kind: LambdaKind,
    /// Range variable; `None` for the argument-less form `any()` (≡ `any(x: true)`).
    pub variable: Option<String>,
    /// Predicate; `None` exactly when `variable` is `None`.
    pub predicate: Option<Box<Expr>>,
}

/// A call with named parameters (Dataverse query functions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFunction {
    /// Name as written, e.g. `Microsoft.Dynamics.CRM.In`.
    pub name: String,
    /// `(parameter name, value)` in order; names are unique.
    pub params: Vec<(String, Expr)>,
}

impl QueryFunction {
    /// The part after the last dot (`In` for `Microsoft.Dynamics.CRM.In`).
    pub fn short_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    /// The namespace (`Microsoft.Dynamics.CRM`), or `""` when unqualified.
    pub fn namespace(&self) -> &str {
        self.name.rsplit_once('.').map_or("", |(ns, _)| ns)
    }

    /// The value of a parameter, by exact name.
    pub fn param(&self, name: &str) -> Option<&Expr> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// One `$orderby` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderByItem {
    /// Normally a [`Expr::Path`]; any expression is parsed (the consumer decides).
    pub expr: Expr,
    /// Direction (default ascending).
    pub direction: Direction,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `asc` (default)
    #[default]
    Asc,
    /// `desc`
    Desc,
}

/// One `$expand` item: `nav`, `nav/$ref`, `nav($select=…;$filter=…;…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandItem {
    /// Navigation property name.
    pub navigation: String,
    /// `nav/$ref`.
    pub is_ref: bool,
    /// Nested options (all `None` when there were no parentheses).
    pub options: ExpandOptions,
}

/// Options inside `$expand=nav(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExpandOptions {
    /// `$select=a,b`
    pub select: Option<Vec<String>>,
    /// `$filter=…` (parameter aliases are refused here, like Dataverse).
    pub filter: Option<Expr>,
    /// `$orderby=…`
    pub orderby: Option<Vec<OrderByItem>>,
    /// `$top=N`
    pub top: Option<u64>,
    /// Nested `$expand=…`
    pub expand: Option<Vec<ExpandItem>>,
}

/// One `$apply` transformation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transformation {
    /// `filter(expr)`
    Filter(Expr),
    /// `groupby((p1,p2/p3))` or `groupby((p1),aggregate(...))`
    GroupBy {
        /// Grouping properties.
        properties: Vec<PropertyPath>,
        /// Optional aggregate child transformation.
        aggregate: Option<Vec<Aggregate>>,
    },
    /// `aggregate(x with sum as total, $count as count)`
    Aggregate(Vec<Aggregate>),
}

/// One aggregate expression inside `aggregate(...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    /// `$count as alias`
    Count {
        /// Result name.
        alias: String,
    },
    /// `path with method as alias`
    Property {
        /// Aggregated property.
        path: PropertyPath,
        /// Aggregation method.
        method: AggregateMethod,
        /// Result name.
        alias: String,
    },
}

impl Aggregate {
    /// The result name (`as alias`).
    pub fn alias(&self) -> &str {
        match self {
            Aggregate::Count { alias } | Aggregate::Property { alias, .. } => alias,
        }
    }
}

/// `with` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateMethod {
    /// `sum`
    Sum,
    /// `average`
    Average,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `countdistinct` (Dataverse rejects it; parsed so the emulator can say so)
    CountDistinct,
}

impl CompareOp {
    /// The OData keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

impl ArithOp {
    /// The OData keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            ArithOp::Add => "add",
            ArithOp::Sub => "sub",
            ArithOp::Mul => "mul",
            ArithOp::Div => "div",
            ArithOp::Mod => "mod",
        }
    }
}

impl LambdaKind {
    /// `any` / `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            LambdaKind::Any => "any",
            LambdaKind::All => "all",
        }
    }
}

impl AggregateMethod {
    /// The OData keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateMethod::Sum => "sum",
            AggregateMethod::Average => "average",
            AggregateMethod::Min => "min",
            AggregateMethod::Max => "max",
            AggregateMethod::CountDistinct => "countdistinct",
        }
    }
}

impl Expr {
    /// The path, if this is a plain [`Expr::Path`].
    pub fn as_path(&self) -> Option<&PropertyPath> {
        match self {
            Expr::Path(p) => Some(p),
            _ => None,
        }
    }

    /// The literal, if this is a [`Expr::Literal`].
    pub fn as_literal(&self) -> Option<&Literal> {
        match self {
            Expr::Literal(l) => Some(l),
            _ => None,
        }
    }
}

impl PropertyPath {
    /// A path of plain segments without a range variable.
    pub fn new<I, S>(segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PropertyPath { variable: None, segments: segments.into_iter().map(Into::into).collect() }
    }

    /// The single segment, when there is no variable and exactly one segment.
    pub fn single(&self) -> Option<&str> {
        match (&self.variable, self.segments.as_slice()) {
            (None, [s]) => Some(s),
            _ => None,
        }
    }
}

impl Literal {
    /// Numeric value of `Int` / `Number` (`INF`, `-INF`, `NaN` included).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Literal::Int(i) => Some(*i as f64),
            Literal::Number { text, .. } => match text.as_str() {
                "INF" => Some(f64::INFINITY),
                "-INF" => Some(f64::NEG_INFINITY),
                "NaN" | "-NaN" => Some(f64::NAN),
                t => t.trim_end_matches(['m', 'M', 'd', 'D', 'f', 'F']).parse().ok(),
            },
            _ => None,
        }
    }
}

impl DateTimeOffset {
    /// The same instant in UTC, as `YYYY-MM-DDTHH:MM:SS[.fffffff]Z` (fraction trimmed of
    /// trailing zeros, omitted when zero). Converting may move the year outside 1..=9999 by one.
    pub fn to_utc_string(&self) -> String {
        let days = crate::datetime::days_from_civil(
            i64::from(self.date.year),
            u32::from(self.date.month),
            u32::from(self.date.day),
        );
        let mins = days * 1440 + i64::from(self.hour) * 60 + i64::from(self.minute) - i64::from(self.offset_minutes);
        let (d, m) = (mins.div_euclid(1440), mins.rem_euclid(1440));
        let (y, mo, da) = crate::datetime::civil_from_days(d);
        let mut s = format!("{y:04}-{mo:02}-{da:02}T{:02}:{:02}:{:02}", m / 60, m % 60, self.second);
        if self.nanosecond != 0 {
            let frac = format!("{:09}", self.nanosecond);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s.push('Z');
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Display: renders OData text that parses back to the same AST (binary operators are fully
// parenthesised). Used by the fuzz round-trip oracle; handy for logs.

impl Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Display for DateTimeOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn quote_odata(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('\'')?;
    for c in s.chars() {
        if c == '\'' {
            f.write_str("''")?;
        } else {
            f.write_char(c)?;
        }
    }
    f.write_char('\'')
}

fn quote_json(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::String(s) => quote_odata(f, s),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Number { text, .. } => f.write_str(text),
            Literal::Guid(g) => f.write_str(g),
            Literal::Date(d) => write!(f, "{d}"),
            Literal::DateTimeOffset(d) => write!(f, "{d}"),
            Literal::Duration(d) => {
                f.write_str("duration")?;
                quote_odata(f, d)
            }
            Literal::Enum { type_name, value } => {
                f.write_str(type_name)?;
                quote_odata(f, value)
            }
        }
    }
}

impl Display for PropertyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in self.variable.iter().chain(self.segments.iter()) {
            if !first {
                f.write_char('/')?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

fn join(f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

impl Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(l) => write!(f, "{l}"),
            Expr::Array(items) => {
                f.write_char('[')?;
                for (i, l) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    match l {
                        Literal::String(s) => quote_json(f, s)?,
                        other => write!(f, "{other}")?,
                    }
                }
                f.write_char(']')
            }
            Expr::Path(p) => write!(f, "{p}"),
            Expr::Not(e) => write!(f, "not ({e})"),
            Expr::Negate(e) => write!(f, "-({e})"),
            Expr::And(v) => {
                f.write_char('(')?;
                join(f, v, " and ")?;
                f.write_char(')')
            }
            Expr::Or(v) => {
                f.write_char('(')?;
                join(f, v, " or ")?;
                f.write_char(')')
            }
            Expr::Compare { op, left, right } => write!(f, "({left} {} {right})", op.as_str()),
            Expr::Has { left, right } => write!(f, "({left} has {right})"),
            Expr::Arith { op, left, right } => write!(f, "({left} {} {right})", op.as_str()),
            Expr::Call { name, args } => {
                write!(f, "{name}(")?;
                join(f, args, ",")?;
                f.write_char(')')
            }
            Expr::QueryFunction(q) => {
                write!(f, "{}(", q.name)?;
                for (i, (n, v)) in q.params.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{n}={v}")?;
                }
                f.write_char(')')
            }
            Expr::Lambda(l) => {
                write!(f, "{}/{}(", l.collection, l.kind.as_str())?;
                if let (Some(v), Some(p)) = (&l.variable, &l.predicate) {
                    write!(f, "{v}:{p}")?;
                }
                f.write_char(')')
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dto((y, mo, d): (u16, u8, u8), (h, mi, s): (u8, u8, u8), ns: u32, off: i16) -> DateTimeOffset {
        DateTimeOffset {
            date: Date { year: y, month: mo, day: d },
            hour: h,
            minute: mi,
            second: s,
            nanosecond: ns,
            offset_minutes: off,
            text: String::new(),
        }
    }

    #[test]
    fn utc_conversion() {
        assert_eq!(dto((2023, 1, 1), (0, 0, 0), 0, 0).to_utc_string(), "2023-01-01T00:00:00Z");
        assert_eq!(dto((2023, 1, 1), (0, 30, 0), 0, 60).to_utc_string(), "2022-12-31T23:30:00Z");
        assert_eq!(dto((2024, 2, 28), (23, 0, 5), 120_000_000, -120).to_utc_string(), "2024-02-29T01:00:05.12Z");
        assert_eq!(dto((2023, 12, 31), (23, 59, 59), 0, -840).to_utc_string(), "2024-01-01T13:59:59Z");
    }

    #[test]
    fn query_function_helpers() {
        let q = QueryFunction {
            name: "Microsoft.Dynamics.CRM.In".into(),
            params: vec![("PropertyName".into(), Expr::Literal(Literal::String("x".into())))],
        };
        assert_eq!(q.short_name(), "In");
        assert_eq!(q.namespace(), "Microsoft.Dynamics.CRM");
        assert!(q.param("PropertyName").is_some());
        assert!(q.param("propertyname").is_none());
        let u = QueryFunction { name: "In".into(), params: vec![] };
        assert_eq!(u.short_name(), "In");
        assert_eq!(u.namespace(), "");
    }

    #[test]
    fn number_values() {
        let n = |t: &str| Literal::Number { text: t.into(), kind: NumberKind::Double };
        assert_eq!(n("1.5").as_f64(), Some(1.5));
        assert_eq!(n("2.5m").as_f64(), Some(2.5));
        assert_eq!(n("-1e3").as_f64(), Some(-1000.0));
        assert_eq!(n("INF").as_f64(), Some(f64::INFINITY));
        assert_eq!(n("-INF").as_f64(), Some(f64::NEG_INFINITY));
        assert!(n("NaN").as_f64().is_some_and(f64::is_nan));
        assert_eq!(Literal::Int(-3).as_f64(), Some(-3.0));
        assert_eq!(Literal::Null.as_f64(), None);
    }

    #[test]
    fn display_literals() {
        assert_eq!(Literal::String("O'Bryan".into()).to_string(), "'O''Bryan'");
        assert_eq!(Literal::Enum { type_name: "A.B".into(), value: "x'y".into() }.to_string(), "A.B'x''y'");
        assert_eq!(
            Expr::Array(vec![Literal::String("a\"b\\c\n".into()), Literal::Int(1), Literal::Null]).to_string(),
            r#"["a\"b\\c\n",1,null]"#
        );
    }
}
