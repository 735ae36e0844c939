//! `$filter` of the F&O dialect, translated to SQL (nothing is filtered in memory). Parsing is
//! `d365-odata`'s (enum literals `Microsoft.Dynamics.DataEntities.NoYes'Yes'`, unquoted
//! date-times); the F&O rules are applied here:
//!
//! * `eq ne gt ge lt le`, `and or not`, parentheses, and the arithmetic operators `add sub
//!   mul div mod` on numeric properties;
//! * a string `eq`/`ne` with `*` in the literal is a wildcard match (`'*retail*'`, `'US*'`),
//!   case-insensitive, like every string comparison (SQL Server's default collation);
//! * enums compare with `eq`/`ne` only, against an enum literal of the property's enum type
//!   (a plain string literal holding a member name is also accepted: unconfirmed whether the
//!   real service does);
//! * a Date property compares by date: a date-time literal is converted to its UTC date;
//! * `in` and `has` are refused ("The operators 'has' and 'in' are not supported.", docs),
//!   and so are functions (`contains`, `startswith`, ...): the documented way to write a
//!   contains is the wildcard, and the docs list no functions.

use super::error::{FnoError, FnoResult};
use super::model::{DataType, Entity, Field, NAMESPACE, enum_def};
use super::values::midday;
use d365_odata::{ArithOp, CompareOp, Expr, Literal, NumberKind};
use rusqlite::types::Value as Sql;

/// The message for `in` and `has` (from the F&O OData documentation).
pub const IN_HAS: &str = "The operators 'has' and 'in' are not supported.";

/// Parses `$filter` text and translates it to a SQL condition over `entity`'s table, pushing
/// its parameters to `params`.
pub fn translate(text: &str, entity: &Entity, params: &mut Vec<Sql>) -> FnoResult<String> {
    if uses_in_operator(text) {
        return Err(FnoError::bad_request(IN_HAS));
    }
    let expr = d365_odata::parse_filter(text, &d365_odata::Aliases::new())
        .map_err(|e| FnoError::bad_request(format!("The query specified in the URI is not valid. {e}")))?;
    condition(&expr, entity, params)
}

/// Translates an already parsed filter (a nested `$expand` filter) to SQL over `entity`.
pub fn condition_of(expr: &Expr, entity: &Entity, params: &mut Vec<Sql>) -> FnoResult<String> {
    condition(expr, entity, params)
}

/// Whether the filter uses the `in` operator (`Field in ('a','b')`), outside string literals.
fn uses_in_operator(text: &str) -> bool {
    let mut quoted = false;
    let b = text.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'\'' {
            quoted = !quoted;
            continue;
        }
        if quoted || !(b[i] == b'i' || b[i] == b'I') || b.get(i + 1).map(u8::to_ascii_lowercase) != Some(b'n') {
            continue;
        }
        let before_ok = i > 0 && b[i - 1].is_ascii_whitespace();
        if before_ok && text.get(i + 2..).is_some_and(|rest| rest.trim_start().starts_with('(')) {
            return true;
        }
    }
    false
}

fn unsupported(what: &str) -> FnoError {
    FnoError::bad_request(format!("The query specified in the URI is not valid. {what}"))
}

fn condition(e: &Expr, entity: &Entity, params: &mut Vec<Sql>) -> FnoResult<String> {
    match e {
        Expr::And(items) | Expr::Or(items) => {
            let joiner = if matches!(e, Expr::And(_)) { " AND " } else { " OR " };
            let parts = items.iter().map(|i| condition(i, entity, params)).collect::<FnoResult<Vec<_>>>()?;
            Ok(format!("({})", parts.join(joiner)))
        }
        Expr::Not(inner) => Ok(format!("(NOT {})", condition(inner, entity, params)?)),
        Expr::Compare { op, left, right } => compare(*op, left, right, entity, params),
        Expr::Has { .. } => Err(FnoError::bad_request(IN_HAS)),
        Expr::Call { name, .. } => Err(unsupported(&format!(
            "The function '{name}' is not supported; write a wildcard comparison such as Name eq '*text*' instead."
        ))),
        Expr::QueryFunction(q) => Err(unsupported(&format!("The function '{}' is not supported.", q.name))),
        Expr::Lambda(_) => Err(unsupported("Lambda operators (any, all) are not supported.")),
        _ => Err(unsupported("The $filter expression must evaluate to a single boolean value.")),
    }
}

/// The property a path names (one segment, case-sensitive).
pub fn field_of(e: &Expr, entity: &Entity) -> FnoResult<&'static Field> {
    let Expr::Path(p) = e else { return Err(unsupported("A property name was expected.")) };
    let [name] = p.segments.as_slice() else {
        return Err(unsupported(&format!(
            "The property path '{}' is not supported: only properties of the entity can be used.",
            p.segments.join("/")
        )));
    };
    if p.variable.is_some() {
        return Err(unsupported("Range variables are not supported."));
    }
    entity.field(name).ok_or_else(|| {
        FnoError::bad_request(format!(
            "Could not find a property named '{name}' on type '{NAMESPACE}.{}'.",
            entity.name
        ))
    })
}

fn compare(op: CompareOp, left: &Expr, right: &Expr, entity: &Entity, params: &mut Vec<Sql>) -> FnoResult<String> {
    match (left, right) {
        (Expr::Path(_), Expr::Literal(lit)) => field_vs_literal(field_of(left, entity)?, op, lit, params),
        (Expr::Literal(lit), Expr::Path(_)) => field_vs_literal(field_of(right, entity)?, op.flipped(), lit, params),
        (Expr::Path(_), Expr::Path(_)) => {
            let (a, b) = (field_of(left, entity)?, field_of(right, entity)?);
            let same = a.data_type == b.data_type || (a.data_type.is_numeric() && b.data_type.is_numeric());
            if !same || (matches!(a.data_type, DataType::Enum(_)) && !matches!(op, CompareOp::Eq | CompareOp::Ne)) {
                return Err(incompatible(a.data_type.edm(), b.data_type.edm(), op));
            }
            Ok(format!("\"{}\" {} \"{}\"", a.name, op.sql(), b.name))
        }
        _ => {
            let l = numeric(left, entity, params)?;
            let r = numeric(right, entity, params)?;
            Ok(format!("{l} {} {r}", op.sql()))
        }
    }
}

fn incompatible(a: String, b: String, op: CompareOp) -> FnoError {
    FnoError::bad_request(format!(
        "A binary operator with incompatible types was detected. Found operand types '{a}' and '{b}' for operator kind '{op:?}'."
    ))
}

/// A numeric operand (property, number or arithmetic) as SQL.
fn numeric(e: &Expr, entity: &Entity, params: &mut Vec<Sql>) -> FnoResult<String> {
    match e {
        Expr::Path(_) => {
            let f = field_of(e, entity)?;
            if !f.data_type.is_numeric() {
                return Err(unsupported(&format!("Arithmetic needs numeric operands; '{}' is not numeric.", f.name)));
            }
            Ok(format!("\"{}\"", f.name))
        }
        Expr::Literal(l) => {
            params.push(number(l).ok_or_else(|| unsupported("Arithmetic needs numeric operands."))?);
            Ok("?".into())
        }
        Expr::Negate(inner) => Ok(format!("(-{})", numeric(inner, entity, params)?)),
        Expr::Arith { op, left, right } => {
            let o = match op {
                ArithOp::Add => "+",
                ArithOp::Sub => "-",
                ArithOp::Mul => "*",
                ArithOp::Div => "/",
                ArithOp::Mod => "%",
            };
            let (l, r) = (numeric(left, entity, params)?, numeric(right, entity, params)?);
            Ok(format!("({l} {o} {r})"))
        }
        _ => Err(unsupported("The $filter expression is not supported.")),
    }
}

fn number(l: &Literal) -> Option<Sql> {
    match l {
        Literal::Int(i) => Some(Sql::Integer(*i)),
        Literal::Number { text, kind } if *kind != NumberKind::Double || text.chars().any(|c| c.is_ascii_digit()) => {
            let t = text.trim_end_matches(['m', 'M', 'd', 'D', 'f', 'F', 'l', 'L']);
            t.parse::<f64>().ok().filter(|x| x.is_finite()).map(Sql::Real)
        }
        _ => None,
    }
}

fn literal_type(l: &Literal) -> String {
    match l {
        Literal::Null => "null".into(),
        Literal::Bool(_) => "Edm.Boolean".into(),
        Literal::String(_) => "Edm.String".into(),
        Literal::Int(_) => "Edm.Int32".into(),
        Literal::Number { .. } => "Edm.Decimal".into(),
        Literal::Guid(_) => "Edm.Guid".into(),
        Literal::Date(_) => "Edm.Date".into(),
        Literal::DateTimeOffset(_) => "Edm.DateTimeOffset".into(),
        Literal::Duration(_) => "Edm.Duration".into(),
        Literal::Enum { type_name, .. } => type_name.clone(),
    }
}

fn to_datetime(l: &Literal) -> Option<time::OffsetDateTime> {
    match l {
        Literal::DateTimeOffset(d) => super::values::parse_datetime(&d.to_utc_string()),
        Literal::Date(d) => super::values::parse_datetime(&format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)),
        _ => None,
    }
}

fn field_vs_literal(f: &Field, op: CompareOp, lit: &Literal, params: &mut Vec<Sql>) -> FnoResult<String> {
    let col = format!("\"{}\"", f.name);
    let bad = || incompatible(f.data_type.edm(), literal_type(lit), op);
    if matches!(lit, Literal::Null) {
        return match op {
            CompareOp::Eq => Ok(format!("{col} IS NULL")),
            CompareOp::Ne => Ok(format!("{col} IS NOT NULL")),
            _ => Err(bad()),
        };
    }
    let value = match f.data_type {
        DataType::String => {
            let Literal::String(s) = lit else { return Err(bad()) };
            if s.contains('*') && matches!(op, CompareOp::Eq | CompareOp::Ne) {
                params.push(Sql::Text(like_pattern(s)));
                let not = if op == CompareOp::Ne { "NOT " } else { "" };
                return Ok(format!("{col} {not}LIKE ? ESCAPE '\\'"));
            }
            Sql::Text(s.clone())
        }
        DataType::Guid => match lit {
            Literal::Guid(g) | Literal::String(g) => Sql::Text(g.to_ascii_lowercase()),
            _ => return Err(bad()),
        },
        DataType::Int32 | DataType::Int64 | DataType::Real => number(lit).ok_or_else(bad)?,
        DataType::Date => Sql::Integer(midday(to_datetime(lit).ok_or_else(bad)?)),
        DataType::UtcDateTime => {
            let t = to_datetime(lit).ok_or_else(bad)?;
            if t.nanosecond() == 0 {
                Sql::Integer(t.unix_timestamp())
            } else {
                Sql::Real(t.unix_timestamp() as f64 + f64::from(t.nanosecond()) / 1e9)
            }
        }
        DataType::Enum(e) => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(FnoError::bad_request(format!(
                    "The operator '{}' is not supported for the enum property '{}': enums compare with eq and ne only.",
                    format!("{op:?}").to_ascii_lowercase(),
                    f.name
                )));
            }
            let qualified = format!("{NAMESPACE}.{e}");
            let member = match lit {
                Literal::Enum { type_name, value } if *type_name == qualified => value,
                Literal::String(s) => s,
                Literal::Enum { type_name, .. } => {
                    return Err(FnoError::bad_request(format!(
                        "The enum literal of type '{type_name}' cannot be compared with the property '{}' of type '{qualified}'.",
                        f.name
                    )));
                }
                _ => return Err(bad()),
            };
            let v = enum_def(e).and_then(|d| d.value(member)).ok_or_else(|| {
                FnoError::bad_request(format!(
                    "The value '{member}' is not a valid enum constant of type '{qualified}'."
                ))
            })?;
            Sql::Integer(v)
        }
    };
    params.push(value);
    Ok(format!("{col} {} ?", op.sql()))
}

/// A wildcard literal as a `LIKE` pattern (`*` → `%`; `%`, `_` and `\` escaped).
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(text: &str) -> FnoResult<(String, Vec<Sql>)> {
        let e = super::super::model::entity("CustomerV3").unwrap();
        let mut p = Vec::new();
        translate(text, e, &mut p).map(|s| (s, p))
    }

    #[test]
    fn translates_the_dialect() {
        let (s, p) = sql("IsSalesTaxIncludedInPrice eq Microsoft.Dynamics.DataEntities.NoYes'Yes'").unwrap();
        assert_eq!(s, "\"IsSalesTaxIncludedInPrice\" = ?");
        assert_eq!(p, vec![Sql::Integer(1)]);
        let (s, p) = sql("OrganizationName eq '*ware_1*' and not (CreditLimit gt 5)").unwrap();
        assert_eq!(s, "(\"OrganizationName\" LIKE ? ESCAPE '\\' AND (NOT \"CreditLimit\" > ?))");
        assert_eq!(p[0], Sql::Text("%ware\\_1%".into()));
        let (s, p) = sql("ModifiedDateTime ge 2024-01-01T00:00:00Z").unwrap();
        assert_eq!((s.as_str(), p), ("\"ModifiedDateTime\" >= ?", vec![Sql::Integer(1_704_067_200)]));
        assert!(sql("CreditLimit add 10 gt 100").unwrap().0.contains("(\"CreditLimit\" + ?) > ?"));
    }

    #[test]
    fn refuses_what_fno_refuses() {
        for bad in [
            "dataAreaId in ('usmf','usrt')",
            "CustomerType has Microsoft.Dynamics.DataEntities.CustVendorPartyType'Person'",
            "contains(OrganizationName,'x')",
            "IsSalesTaxIncludedInPrice gt Microsoft.Dynamics.DataEntities.NoYes'No'",
            "IsSalesTaxIncludedInPrice eq Microsoft.Dynamics.DataEntities.NoYes'Maybe'",
            "Nope eq 1",
            "customeraccount eq 'x'",
            "CustomerAccount eq",
            "ModifiedDateTime gt '2024-01-01'",
            "CreditLimit eq true",
            "((((",
        ] {
            let e = sql(bad).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}: {e}");
        }
        assert_eq!(sql("dataAreaId in ('usmf')").unwrap_err().message, IN_HAS);
        assert!(sql("OrganizationName eq 'sign in (now)'").is_ok(), "'in' inside a string literal is text");
    }
}
