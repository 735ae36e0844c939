//! `$filter` → SQLite `WHERE`, over the AST of the `d365-odata` parser.
//!
//! Semantics follow what Dataverse's SQL does: string comparisons ignore case (the columns are
//! `COLLATE NOCASE`), `contains`/`startswith`/`endswith` are `LIKE` with the value's own `%` and
//! `_` wildcards kept, `ne` excludes rows whose value is null (SQL three-valued logic),
//! related-record paths (`primarycontactid/fullname`) are outer joins (no related row → null),
//! and `any`/`all` over 1:N navigation properties are `EXISTS` subqueries. Arithmetic, `has`,
//! and OData functions Dataverse does not support are refused with its 400.

use super::auth::Caller;
use super::error::{DvError, DvResult};
use super::query_functions;
use crate::schema::{AttrKind, Column, Schema, Table};
use crate::store::codec::{format_datetime, storage_scale};
use crate::store::ddl::q;
use d365_odata::{Aliases, CompareOp, Expr, LambdaKind, Literal, NumberKind, PropertyPath, parse_filter};
use rusqlite::types::Value as Sql;
use time::OffsetDateTime;

/// What a filter may refer to besides the row: the schema, the caller (`EqualUserId`) and
/// the current time (relative date functions).
#[derive(Clone, Copy)]
pub struct FilterEnv<'a> {
    /// All tables (for navigation paths and lambdas).
    pub schema: &'a Schema,
    /// The caller.
    pub caller: &'a Caller,
    /// "Now" for `Today`, `LastXDays`, ...
    pub now: OffsetDateTime,
}

/// Parses `filter` (with the request's parameter aliases) and translates it into an SQL
/// condition over `alias` (a row of `table`), pushing parameters to `params` in text order.
pub fn translate(
    env: FilterEnv<'_>,
    table: &Table,
    alias: &str,
    filter: &str,
    aliases: &[(String, String)],
    params: &mut Vec<Sql>,
) -> DvResult<String> {
    let aliases = Aliases::from_pairs(aliases.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let expr = parse_filter(filter, &aliases).map_err(|e| DvError::bad_query(e.message))?;
    translate_expr(env, table, alias, &expr, params)
}

/// Translates an already parsed filter expression (used by `$expand` and `$apply`).
pub fn translate_expr(
    env: FilterEnv<'_>,
    table: &Table,
    alias: &str,
    expr: &Expr,
    params: &mut Vec<Sql>,
) -> DvResult<String> {
    let mut t = Translator { env, root: (table, alias.to_string()), scopes: Vec::new(), next_alias: 0, params };
    t.boolean(expr)
}

/// Resolves a property path (`revenue`, `primarycontactid/fullname`) of `table` at `alias` to
/// SQL and its column (used by `$apply` grouping).
pub fn resolve_path<'e>(
    env: FilterEnv<'e>,
    table: &'e Table,
    alias: &str,
    path: &PropertyPath,
    params: &mut Vec<Sql>,
) -> DvResult<(String, &'e Column)> {
    let mut t = Translator { env, root: (table, alias.to_string()), scopes: Vec::new(), next_alias: 100, params };
    t.path(path)
}

/// A value the comparison operators work on.
pub(super) enum Operand<'s> {
    /// A column (possibly through N:1 navigation), as SQL text.
    Column { sql: String, col: &'s Column },
    /// A literal.
    Lit(Literal),
    /// A boolean SQL condition (`contains(...)`, a nested comparison, a query function).
    Bool(String),
}

struct Translator<'e, 'p> {
    env: FilterEnv<'e>,
    root: (&'e Table, String),
    /// Lambda range variables in scope: (name, table, SQL alias).
    scopes: Vec<(String, &'e Table, String)>,
    next_alias: usize,
    params: &'p mut Vec<Sql>,
}

/// `The query node X is not supported.`: what Dataverse answers for OData it cannot run.
pub(super) fn node_not_supported(node: &str) -> DvError {
    DvError::bad_query(format!("The query node {node} is not supported."))
}

fn op_kind(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "Equal",
        CompareOp::Ne => "NotEqual",
        CompareOp::Gt => "GreaterThan",
        CompareOp::Ge => "GreaterThanOrEqual",
        CompareOp::Lt => "LessThan",
        CompareOp::Le => "LessThanOrEqual",
    }
}

/// The EDM type name of a literal, as ODataLib prints it in type errors.
pub(super) fn literal_edm(l: &Literal) -> String {
    match l {
        Literal::Null => "null".into(),
        Literal::Bool(_) => "Edm.Boolean".into(),
        Literal::String(_) => "Edm.String".into(),
        Literal::Int(i) if i32::try_from(*i).is_ok() => "Edm.Int32".into(),
        Literal::Int(_) => "Edm.Int64".into(),
        Literal::Number { kind: NumberKind::Decimal, .. } => "Edm.Decimal".into(),
        Literal::Number { kind: NumberKind::Double, .. } => "Edm.Double".into(),
        Literal::Number { kind: NumberKind::Single, .. } => "Edm.Single".into(),
        Literal::Guid(_) => "Edm.Guid".into(),
        Literal::Date(_) => "Edm.Date".into(),
        Literal::DateTimeOffset(_) => "Edm.DateTimeOffset".into(),
        Literal::Duration(_) => "Edm.Duration".into(),
        Literal::Enum { type_name, .. } => type_name.clone(),
    }
}

fn incompatible(left: &str, right: &str, op: CompareOp) -> DvError {
    DvError::bad_query(format!(
        "A binary operator with incompatible types was detected. Found operand types '{left}' and '{right}' for operator kind '{}'.",
        op_kind(op)
    ))
}

/// A literal converted to the stored form of a column.
pub(super) enum Stored {
    /// Compare directly.
    Exact(Sql),
    /// A DateTime literal with a fraction of a second; stored values have whole seconds, so
    /// `whole` is the literal truncated to the second.
    Fractional { whole: Sql, next: Sql },
}

/// Converts `lit` to the stored form of `col`, or `None` when the types do not match.
pub(super) fn literal_to_stored(col: &Column, lit: &Literal) -> Option<Stored> {
    use AttrKind as K;
    let exact = |v: Sql| Some(Stored::Exact(v));
    match (col.kind, lit) {
        (K::String | K::Memo | K::MultiSelectPicklist, Literal::String(s)) => exact(Sql::Text(s.clone())),
        (K::Integer | K::BigInt | K::Picklist | K::State | K::Status, Literal::Int(i)) => exact(Sql::Integer(*i)),
        (K::Integer | K::BigInt | K::Picklist | K::State | K::Status | K::Double, l @ Literal::Number { .. }) => {
            exact(Sql::Real(l.as_f64()?))
        }
        (K::Double, Literal::Int(i)) => exact(Sql::Real(*i as f64)),
        (K::Boolean, Literal::Bool(b)) => exact(Sql::Integer(i64::from(*b))),
        (K::Money | K::Decimal, l @ (Literal::Int(_) | Literal::Number { .. })) => {
            let scale = storage_scale(col).unwrap_or(0);
            if let Literal::Int(i) = l
                && let Some(v) = i.checked_mul(10i64.pow(scale))
            {
                return exact(Sql::Integer(v));
            }
            let f = l.as_f64()? * 10f64.powi(scale as i32);
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18 {
                exact(Sql::Integer(f as i64))
            } else {
                exact(Sql::Real(f))
            }
        }
        (K::DateTime, Literal::DateTimeOffset(d)) => {
            let utc = d.to_utc_string();
            let whole = format!("{}Z", &utc[..19]);
            if d.nanosecond == 0 {
                exact(Sql::Text(whole))
            } else {
                let t = OffsetDateTime::parse(&whole, &time::format_description::well_known::Rfc3339).ok()?;
                Some(Stored::Fractional {
                    whole: Sql::Text(whole),
                    next: Sql::Text(format_datetime(t + time::Duration::seconds(1))),
                })
            }
        }
        (K::DateTime, Literal::Date(d)) => exact(Sql::Text(format!("{d}T00:00:00Z"))),
        (K::DateOnly, Literal::Date(d)) => exact(Sql::Text(d.to_string())),
        (K::DateOnly, Literal::DateTimeOffset(d)) => exact(Sql::Text(d.date.to_string())),
        (K::Uniqueidentifier | K::Lookup | K::Customer | K::Owner, Literal::Guid(g)) => exact(Sql::Text(g.clone())),
        (K::Uniqueidentifier | K::Lookup | K::Customer | K::Owner, Literal::String(s)) => {
            let g = uuid::Uuid::parse_str(s.trim().trim_start_matches('{').trim_end_matches('}')).ok()?;
            exact(Sql::Text(g.to_string()))
        }
        _ => None,
    }
}

impl<'e> Translator<'e, '_> {
    fn fresh_alias(&mut self) -> String {
        self.next_alias += 1;
        format!("f{}", self.next_alias)
    }

    fn push(&mut self, v: Sql) -> &'static str {
        self.params.push(v);
        "?"
    }

    /// A boolean-valued expression.
    fn boolean(&mut self, e: &Expr) -> DvResult<String> {
        match e {
            Expr::And(items) | Expr::Or(items) => {
                let sep = if matches!(e, Expr::And(_)) { " AND " } else { " OR " };
                let mut parts = Vec::with_capacity(items.len());
                for i in items {
                    parts.push(self.boolean(i)?);
                }
                Ok(format!("({})", parts.join(sep)))
            }
            Expr::Not(inner) => Ok(format!("(NOT {})", self.boolean(inner)?)),
            Expr::Compare { op, left, right } => self.compare(*op, left, right),
            Expr::Call { name, args } => self.call(name, args),
            Expr::QueryFunction(f) => {
                let (table, alias) = (self.root.0, self.root.1.clone());
                let env = self.env;
                query_functions::translate(env, table, &alias, f, self.params)
            }
            Expr::Lambda(l) => self.lambda(l),
            Expr::Literal(Literal::Bool(b)) => Ok(if *b { "1" } else { "0" }.into()),
            Expr::Path(p) => {
                let (sql, col) = self.path(p)?;
                if col.kind == AttrKind::Boolean {
                    Ok(format!("({sql} = 1)"))
                } else {
                    Err(DvError::bad_query(format!(
                        "The $filter expression must evaluate to a single boolean value; '{p}' is of type '{}'.",
                        col.kind.edm_type()
                    )))
                }
            }
            Expr::Arith { op, .. } => Err(node_not_supported(&format!("BinaryOperator ({})", op.as_str()))),
            Expr::Has { .. } => Err(node_not_supported("BinaryOperator (Has)")),
            Expr::Negate(_) => Err(node_not_supported("UnaryOperator (Negate)")),
            Expr::Literal(_) | Expr::Array(_) => {
                Err(DvError::bad_query("The $filter expression must evaluate to a single boolean value."))
            }
        }
    }

    fn operand(&mut self, e: &Expr) -> DvResult<Operand<'e>> {
        match e {
            Expr::Path(p) => {
                let (sql, col) = self.path(p)?;
                Ok(Operand::Column { sql, col })
            }
            Expr::Literal(l) => Ok(Operand::Lit(l.clone())),
            Expr::Arith { op, .. } => Err(node_not_supported(&format!("BinaryOperator ({})", op.as_str()))),
            Expr::Negate(_) => Err(node_not_supported("UnaryOperator (Negate)")),
            Expr::Array(_) => Err(DvError::bad_query("A collection literal can only be used as a function parameter.")),
            other => Ok(Operand::Bool(self.boolean(other)?)),
        }
    }

    fn compare(&mut self, op: CompareOp, left: &Expr, right: &Expr) -> DvResult<String> {
        let l = self.operand(left)?;
        let r = self.operand(right)?;
        match (l, r) {
            (Operand::Column { sql, col }, Operand::Lit(lit)) => self.column_vs_literal(&sql, col, op, &lit),
            (Operand::Lit(lit), Operand::Column { sql, col }) => self.column_vs_literal(&sql, col, op.flipped(), &lit),
            (Operand::Column { sql: a, col: ca }, Operand::Column { sql: b, col: cb }) => {
                let same_family = ca.kind.edm_type() == cb.kind.edm_type() && storage_scale(ca) == storage_scale(cb);
                if !same_family {
                    return Err(incompatible(ca.kind.edm_type(), cb.kind.edm_type(), op));
                }
                Ok(format!("({a} {} {b})", op.sql()))
            }
            (Operand::Bool(b), Operand::Lit(Literal::Bool(v))) | (Operand::Lit(Literal::Bool(v)), Operand::Bool(b)) => {
                match op {
                    CompareOp::Eq if v => Ok(b),
                    CompareOp::Ne if !v => Ok(b),
                    CompareOp::Eq | CompareOp::Ne => Ok(format!("(NOT {b})")),
                    _ => Err(incompatible("Edm.Boolean", "Edm.Boolean", op)),
                }
            }
            (Operand::Lit(a), Operand::Lit(b)) => {
                let (Some(x), Some(y)) = (plain_literal(&a), plain_literal(&b)) else {
                    return Err(incompatible(&literal_edm(&a), &literal_edm(&b), op));
                };
                let (p1, p2) = (self.push(x), self.push(y));
                Ok(format!("({p1} {} {p2})", op.sql()))
            }
            (Operand::Bool(_), other) | (other, Operand::Bool(_)) => {
                let t = match other {
                    Operand::Column { col, .. } => col.kind.edm_type().to_string(),
                    Operand::Lit(l) => literal_edm(&l),
                    Operand::Bool(_) => "Edm.Boolean".into(),
                };
                Err(incompatible("Edm.Boolean", &t, op))
            }
        }
    }

    fn column_vs_literal(&mut self, sql: &str, col: &Column, op: CompareOp, lit: &Literal) -> DvResult<String> {
        if *lit == Literal::Null {
            return Ok(match op {
                CompareOp::Eq => format!("({sql} IS NULL)"),
                CompareOp::Ne => format!("({sql} IS NOT NULL)"),
                _ => "0".into(),
            });
        }
        let stored =
            literal_to_stored(col, lit).ok_or_else(|| incompatible(col.kind.edm_type(), &literal_edm(lit), op))?;
        Ok(match stored {
            Stored::Exact(v) => format!("({sql} {} {})", op.sql(), self.push(v)),
            // Stored instants have whole seconds: x = 10:00:00.5 never holds; x > 10:00:00.5
            // is x >= 10:00:01; x < 10:00:00.5 is x <= 10:00:00.
            Stored::Fractional { whole, next } => match op {
                CompareOp::Eq => "0".into(),
                CompareOp::Ne => format!("({sql} IS NOT NULL)"),
                CompareOp::Gt | CompareOp::Ge => format!("({sql} >= {})", self.push(next)),
                CompareOp::Lt | CompareOp::Le => format!("({sql} <= {})", self.push(whole)),
            },
        })
    }

    fn call(&mut self, name: &str, args: &[Expr]) -> DvResult<String> {
        let (prefix, suffix) = match name {
            "contains" => ("%", "%"),
            "startswith" => ("", "%"),
            "endswith" => ("%", ""),
            "tolower" | "toupper" | "length" | "indexof" | "substring" | "trim" | "concat" | "year" | "month"
            | "day" | "hour" | "minute" | "second" | "fractionalseconds" | "date" | "time" | "now" | "round"
            | "floor" | "ceiling" | "totaloffsetminutes" | "totalseconds" | "maxdatetime" | "mindatetime" | "cast"
            | "isof" | "matchesPattern" | "geo.distance" | "geo.length" | "geo.intersects" => {
                return Err(node_not_supported("SingleValueFunctionCall"));
            }
            other => {
                return Err(DvError::bad_query(format!(
                    "An unknown function with name '{other}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed."
                )));
            }
        };
        let signature = || {
            DvError::bad_query(format!(
                "No function signature for the function with name '{name}' matches the specified arguments. The function signatures considered are: {name}(Edm.String Nullable=true, Edm.String Nullable=true)."
            ))
        };
        let [subject, value] = args else { return Err(signature()) };
        let Expr::Path(p) = subject else { return Err(signature()) };
        let (sql, col) = self.path(p)?;
        if !matches!(col.kind, AttrKind::String | AttrKind::Memo) {
            return Err(signature());
        }
        let pattern = match value {
            Expr::Literal(Literal::String(s)) => format!("{prefix}{s}{suffix}"),
            Expr::Literal(Literal::Null) => return Ok("0".into()),
            _ => return Err(signature()),
        };
        Ok(format!("({sql} LIKE {})", self.push(Sql::Text(pattern))))
    }

    /// Resolves a property path to SQL and its column. N:1 hops become correlated scalar
    /// subqueries (null when the lookup is empty, like the outer join Dataverse uses).
    fn path(&mut self, p: &PropertyPath) -> DvResult<(String, &'e Column)> {
        let (mut table, mut alias) = match &p.variable {
            None => (self.root.0, self.root.1.clone()),
            Some(v) if v == "$it" => (self.root.0, self.root.1.clone()),
            Some(v) => match self.scopes.iter().rev().find(|(n, _, _)| n == v) {
                Some((_, t, a)) => (*t, a.clone()),
                None => return Err(DvError::bad_query(format!("Could not find a property named '{v}'."))),
            },
        };
        let Some((last, hops)) = p.segments.split_last() else {
            return Err(DvError::bad_query(format!("The range variable '{p}' cannot be compared directly.")));
        };
        // `reference` is the SQL of the current row's key value in `table`.
        let mut reference: Option<String> = None;
        let schema = self.env.schema;
        for hop in hops {
            let Some(rel) = schema.single_nav(&table.logical_name, hop) else {
                if schema.collection_nav(&table.logical_name, hop).is_some() {
                    return Err(DvError::bad_query(format!(
                        "The parent value for a property access of a property '{last}' is not a single value. Property access can only be applied to a single value."
                    )));
                }
                return Err(DvError::unknown_property(hop, &table.logical_name));
            };
            let target = schema
                .table(&rel.referenced_entity)
                .ok_or_else(|| DvError::internal(format!("relationship target {} missing", rel.referenced_entity)))?;
            // The lookup value of the current row: the key of the row it points to.
            let lookup_sql = match &reference {
                None => format!("{alias}.{}", q(&rel.referencing_attribute)),
                Some(r) => {
                    let x = self.fresh_alias();
                    format!(
                        "(SELECT {x}.{} FROM {} {x} WHERE {x}.{} = {r})",
                        q(&rel.referencing_attribute),
                        q(&table.logical_name),
                        q(&table.primary_id)
                    )
                }
            };
            reference = Some(lookup_sql);
            table = target;
            alias = String::new();
        }
        let col = table.column_by_property(last).ok_or_else(|| {
            if schema.single_nav(&table.logical_name, last).is_some()
                || schema.collection_nav(&table.logical_name, last).is_some()
            {
                DvError::bad_query(format!(
                    "The navigation property '{last}' cannot be compared; filter on one of its columns ('{last}/<column>') or on the lookup property."
                ))
            } else {
                DvError::unknown_property(last, &table.logical_name)
            }
        })?;
        let sql = match reference {
            None => format!("{alias}.{}", q(&col.logical_name)),
            Some(r) => {
                let a = self.fresh_alias();
                format!(
                    "(SELECT {a}.{} FROM {} {a} WHERE {a}.{} = {r})",
                    q(&col.logical_name),
                    q(&table.logical_name),
                    q(&table.primary_id)
                )
            }
        };
        Ok((sql, col))
    }

    fn lambda(&mut self, l: &d365_odata::Lambda) -> DvResult<String> {
        let (table, alias) = match &l.collection.variable {
            None => (self.root.0, self.root.1.clone()),
            Some(v) if v == "$it" => (self.root.0, self.root.1.clone()),
            Some(v) => match self.scopes.iter().rev().find(|(n, _, _)| n == v) {
                Some((_, t, a)) => (*t, a.clone()),
                None => return Err(DvError::bad_query(format!("Could not find a property named '{v}'."))),
            },
        };
        let [nav] = l.collection.segments.as_slice() else {
            return Err(DvError::bad_query(format!(
                "Lambda operators are supported on collection-valued navigation properties of the queried table only; '{}' is not one.",
                l.collection
            )));
        };
        let schema = self.env.schema;
        let rel = schema.collection_nav(&table.logical_name, nav).ok_or_else(|| {
            if schema.single_nav(&table.logical_name, nav).is_some() {
                DvError::bad_query(format!(
                    "The '{}' lambda can only be applied to a collection-valued navigation property; '{nav}' is single-valued.",
                    l.kind.as_str()
                ))
            } else {
                DvError::unknown_property(nav, &table.logical_name)
            }
        })?;
        let child = schema
            .table(&rel.referencing_entity)
            .ok_or_else(|| DvError::internal(format!("relationship source {} missing", rel.referencing_entity)))?;
        self.env.caller.check(child, crate::security::Access::Read)?;
        let a = self.fresh_alias();
        let link = format!("{a}.{} = {alias}.{}", q(&rel.referencing_attribute), q(&table.primary_id));
        let predicate = match (&l.variable, &l.predicate) {
            (Some(v), Some(p)) => {
                self.scopes.push((v.clone(), child, a.clone()));
                let r = self.boolean(p);
                self.scopes.pop();
                Some(r?)
            }
            _ => None,
        };
        let from = format!("FROM {} {a} WHERE {link}", q(&child.logical_name));
        Ok(match (l.kind, predicate) {
            (LambdaKind::Any, None) => format!("EXISTS (SELECT 1 {from})"),
            (LambdaKind::Any, Some(p)) => format!("EXISTS (SELECT 1 {from} AND {p})"),
            (LambdaKind::All, None) => "1".into(),
            (LambdaKind::All, Some(p)) => format!("NOT EXISTS (SELECT 1 {from} AND NOT coalesce({p}, 0))"),
        })
    }
}

fn plain_literal(l: &Literal) -> Option<Sql> {
    Some(match l {
        Literal::Null => Sql::Null,
        Literal::Bool(b) => Sql::Integer(i64::from(*b)),
        Literal::String(s) | Literal::Guid(s) => Sql::Text(s.clone()),
        Literal::Int(i) => Sql::Integer(*i),
        n @ Literal::Number { .. } => Sql::Real(n.as_f64()?),
        Literal::Date(d) => Sql::Text(d.to_string()),
        _ => return None,
    })
}
