//! `<filter>` and `<condition>` → SQL. Values are converted to the column's stored form and
//! bound as parameters. String comparisons ignore case (the columns are `COLLATE NOCASE`),
//! `like` keeps the value's `%` / `_` wildcards, and negative operators (`ne`, `not-like`,
//! `not-in`, ...) exclude rows whose value is null, as SQL does on Dataverse. Relative date
//! operators are evaluated in UTC against the emulator's clock (weeks start on Sunday), with
//! the same ranges as the OData query functions.

use super::errors;
use super::plan::Plan;
use crate::schema::{AttrKind, Column, Table};
use crate::store::ddl::q;
use crate::webapi::error::DvResult;
use crate::webapi::filter_sql::{Stored, literal_to_stored};
use crate::webapi::query_functions::{range, relative_range, start_of};
use d365_odata::fetchxml::{Condition, Filter, FilterItem, LinkEntity, LinkType, Operator as Op};
use d365_odata::{Expr, Literal};
use rusqlite::types::Value as Sql;
use time::Date;

impl<'s> Plan<'s> {
    /// A `<filter>` over `table` at SQL alias `sql`.
    pub fn filter_sql(
        &mut self,
        table: &'s Table,
        sql: &str,
        f: &'s Filter,
        params: &mut Vec<Sql>,
    ) -> DvResult<String> {
        let mut parts = Vec::with_capacity(f.items.len());
        for item in &f.items {
            parts.push(match item {
                FilterItem::Condition(c) => self.condition_sql(table, sql, c, params)?,
                FilterItem::Filter(inner) => self.filter_sql(table, sql, inner, params)?,
                FilterItem::Link(l) => self.filter_link_sql(table, sql, l, params)?,
            });
        }
        if parts.is_empty() {
            return Ok("1".into());
        }
        Ok(format!("({})", parts.join(if f.or { " OR " } else { " AND " })))
    }

    /// A link-entity of a filter link type: `any` / `not any` / `all` / `not all`.
    fn filter_link_sql(
        &mut self,
        table: &'s Table,
        sql: &str,
        l: &'s LinkEntity,
        params: &mut Vec<Sql>,
    ) -> DvResult<String> {
        match l.link_type {
            LinkType::Any | LinkType::NotAny => {
                let (body, _) = self.link_subquery(table, sql, l, params)?;
                let not = if l.link_type == LinkType::NotAny { "NOT " } else { "" };
                Ok(format!("({not}EXISTS (SELECT 1 {body}))"))
            }
            _ => {
                // all: related rows exist and every one of them matches the link's filters;
                // not all: some related row does not match them.
                let linked = self.table(&l.name)?;
                let (from, to) = self.join_columns(table, linked, l)?;
                let x = self.sub_alias();
                let mut sub_params = Vec::new();
                let conds = self.node_conditions(linked, &x, &l.node, &mut sub_params)?;
                let matches = if conds.is_empty() { "1".to_string() } else { conds.join(" AND ") };
                let from_sql = format!(
                    "FROM {} {x} WHERE {x}.{} = {sql}.{}",
                    q(&linked.logical_name),
                    q(&from.logical_name),
                    q(&to.logical_name)
                );
                let failing = format!("EXISTS (SELECT 1 {from_sql} AND NOT coalesce({matches}, 0))");
                params.extend(sub_params);
                Ok(if l.link_type == LinkType::All {
                    format!("(EXISTS (SELECT 1 {from_sql}) AND NOT {failing})")
                } else {
                    format!("({failing})")
                })
            }
        }
    }

    /// One `<condition>`.
    fn condition_sql(&mut self, table: &'s Table, sql: &str, c: &Condition, params: &mut Vec<Sql>) -> DvResult<String> {
        let (table, alias) = match &c.entityname {
            Some(e) => {
                let s = self.scope_by_alias(e)?;
                (s.table, s.sql.clone())
            }
            None => (table, sql.to_string()),
        };
        let column =
            table.column(&c.attribute).ok_or_else(|| errors::no_attribute(&table.logical_name, &c.attribute))?;
        let col = format!("{alias}.{}", q(&column.logical_name));
        if let Some(other) = &c.valueof {
            return self.valueof_sql(table, &alias, &col, column, c.operator, other);
        }
        let mut push = |v: Sql| {
            params.push(v);
            "?"
        };
        let value = |i: usize| -> DvResult<Sql> { stored(table, column, &c.values[i]) };
        let text_pattern = |prefix: &str, suffix: &str| -> DvResult<Sql> {
            if !matches!(column.kind, AttrKind::String | AttrKind::Memo) {
                return Err(errors::operator_type(c.operator.as_str(), &table.logical_name, column));
            }
            Ok(Sql::Text(format!("{prefix}{}{suffix}", c.values[0])))
        };
        let now = self.env.now;
        let today = now.date();
        Ok(match c.operator {
            Op::Eq | Op::Ne | Op::Neq | Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                let v = value(0)?;
                format!("({col} {} {})", compare_sql(c.operator), push(v))
            }
            Op::Like | Op::NotLike => {
                let v = text_pattern("", "")?;
                let not = if c.operator == Op::NotLike { "NOT " } else { "" };
                format!("({col} {not}LIKE {})", push(v))
            }
            Op::BeginsWith | Op::NotBeginWith => {
                let v = text_pattern("", "%")?;
                let not = if c.operator == Op::NotBeginWith { "NOT " } else { "" };
                format!("({col} {not}LIKE {})", push(v))
            }
            Op::EndsWith | Op::NotEndWith => {
                let v = text_pattern("%", "")?;
                let not = if c.operator == Op::NotEndWith { "NOT " } else { "" };
                format!("({col} {not}LIKE {})", push(v))
            }
            Op::In | Op::NotIn => {
                let values = (0..c.values.len()).map(value).collect::<DvResult<Vec<_>>>()?;
                let marks: Vec<&str> = values.into_iter().map(&mut push).collect();
                let not = if c.operator == Op::NotIn { "NOT " } else { "" };
                format!("({col} {not}IN ({}))", marks.join(", "))
            }
            Op::Between | Op::NotBetween => {
                let (lo, hi) = (value(0)?, value(1)?);
                let not = if c.operator == Op::NotBetween { "NOT " } else { "" };
                format!("({col} {not}BETWEEN {} AND {})", push(lo), push(hi))
            }
            Op::Null => format!("({col} IS NULL)"),
            Op::NotNull => format!("({col} IS NOT NULL)"),
            Op::EqUserId | Op::NeUserId | Op::EqBusinessId | Op::NeBusinessId => {
                if !matches!(
                    column.kind,
                    AttrKind::Lookup | AttrKind::Owner | AttrKind::Customer | AttrKind::Uniqueidentifier
                ) {
                    return Err(errors::operator_type(c.operator.as_str(), &table.logical_name, column));
                }
                let id = if matches!(c.operator, Op::EqUserId | Op::NeUserId) {
                    self.env.caller.user.systemuserid.clone()
                } else {
                    self.env.caller.user.business_unit.clone()
                };
                let op = if matches!(c.operator, Op::NeUserId | Op::NeBusinessId) { "<>" } else { "=" };
                format!("({col} {op} {})", push(Sql::Text(id)))
            }
            Op::On | Op::OnOrBefore | Op::OnOrAfter | Op::NotOn => {
                date_column(c, table, column)?;
                let day = date_value(table, column, &c.values[0])?;
                let (lo, hi) = (start_of(day), start_of(day.next_day().unwrap_or(day)));
                match c.operator {
                    Op::On => range(column, &col, Some(lo), Some(hi), &mut push),
                    Op::NotOn => format!("(NOT {})", range(column, &col, Some(lo), Some(hi), &mut push)),
                    Op::OnOrAfter => range(column, &col, Some(lo), None, &mut push),
                    _ => range(column, &col, None, Some(hi), &mut push),
                }
            }
            op => match relative_function(op) {
                Some(short) => {
                    date_column(c, table, column)?;
                    let x = || -> DvResult<i64> {
                        c.values
                            .first()
                            .and_then(|v| v.trim().parse::<i64>().ok())
                            .filter(|x| (0..=100_000).contains(x))
                            .ok_or_else(|| {
                                errors::bad_value(
                                    c.values.first().map(String::as_str).unwrap_or(""),
                                    table,
                                    column,
                                    "System.Int32",
                                )
                            })
                    };
                    let (lo, hi) = relative_range(op.as_str(), short, x, now, today)?;
                    range(column, &col, lo, hi, &mut push)
                }
                None => return Err(errors::not_emulated(op.as_str())),
            },
        })
    }

    /// `valueof`: the column compared with another column of the same row.
    fn valueof_sql(
        &self,
        table: &'s Table,
        alias: &str,
        col: &str,
        column: &Column,
        op: Op,
        other: &str,
    ) -> DvResult<String> {
        let (other_table, other_alias, name) = match other.split_once('.') {
            Some((a, n)) => {
                let s = self.scope_by_alias(a)?;
                (s.table, s.sql.clone(), n)
            }
            None => (table, alias.to_string(), other),
        };
        let o = other_table.column(name).ok_or_else(|| errors::no_attribute(&other_table.logical_name, name))?;
        if !matches!(op, Op::Eq | Op::Ne | Op::Neq | Op::Gt | Op::Ge | Op::Lt | Op::Le) {
            return Err(errors::operator_type(op.as_str(), &table.logical_name, column));
        }
        if o.kind.edm_type() != column.kind.edm_type() {
            return Err(errors::operator_type(op.as_str(), &other_table.logical_name, o));
        }
        Ok(format!("({col} {} {other_alias}.{})", compare_sql(op), q(&o.logical_name)))
    }
}

fn compare_sql(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne | Op::Neq => "<>",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        _ => "<=",
    }
}

/// The OData query function with the same date range as a relative date operator.
fn relative_function(op: Op) -> Option<&'static str> {
    Some(match op {
        Op::Today => "Today",
        Op::Yesterday => "Yesterday",
        Op::Tomorrow => "Tomorrow",
        Op::LastSevenDays => "Last7Days",
        Op::NextSevenDays => "Next7Days",
        Op::LastWeek => "LastWeek",
        Op::ThisWeek => "ThisWeek",
        Op::NextWeek => "NextWeek",
        Op::LastMonth => "LastMonth",
        Op::ThisMonth => "ThisMonth",
        Op::NextMonth => "NextMonth",
        Op::LastYear => "LastYear",
        Op::ThisYear => "ThisYear",
        Op::NextYear => "NextYear",
        Op::LastXHours => "LastXHours",
        Op::NextXHours => "NextXHours",
        Op::LastXDays => "LastXDays",
        Op::NextXDays => "NextXDays",
        Op::LastXWeeks => "LastXWeeks",
        Op::NextXWeeks => "NextXWeeks",
        Op::LastXMonths => "LastXMonths",
        Op::NextXMonths => "NextXMonths",
        Op::LastXYears => "LastXYears",
        Op::NextXYears => "NextXYears",
        Op::OlderThanXMinutes => "OlderThanXMinutes",
        Op::OlderThanXHours => "OlderThanXHours",
        Op::OlderThanXDays => "OlderThanXDays",
        Op::OlderThanXWeeks => "OlderThanXWeeks",
        Op::OlderThanXMonths => "OlderThanXMonths",
        Op::OlderThanXYears => "OlderThanXYears",
        _ => return None,
    })
}

fn date_column(c: &Condition, table: &Table, column: &Column) -> DvResult<()> {
    if matches!(column.kind, AttrKind::DateTime | AttrKind::DateOnly) {
        Ok(())
    } else {
        Err(errors::operator_type(c.operator.as_str(), &table.logical_name, column))
    }
}

fn date_value(table: &Table, column: &Column, text: &str) -> DvResult<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim().get(..10).unwrap_or(""), &fmt)
        .map_err(|_| errors::bad_value(text, table, column, "System.DateTime"))
}

/// A condition value converted to the stored form of `column`.
pub fn stored(table: &Table, column: &Column, text: &str) -> DvResult<Sql> {
    use AttrKind as K;
    let bad = || errors::bad_value(text, table, column, clr_type(column));
    let t = text.trim();
    let lit = match column.kind {
        K::String | K::Memo | K::MultiSelectPicklist => Literal::String(text.to_string()),
        K::Uniqueidentifier | K::Lookup | K::Customer | K::Owner => Literal::String(t.to_string()),
        K::Boolean => match t.to_ascii_lowercase().as_str() {
            "1" | "true" => Literal::Bool(true),
            "0" | "false" => Literal::Bool(false),
            _ => return Err(bad()),
        },
        K::DateTime | K::DateOnly => {
            // `2023-01-01`, `2023-01-01T10:00:00Z`, `2023-01-01 10:00:00` (taken as UTC).
            let iso = if t.len() > 10 && t.as_bytes().get(10) == Some(&b' ') {
                format!("{}T{}", &t[..10], &t[11..])
            } else {
                t.to_string()
            };
            let iso = if iso.len() == 19 { format!("{iso}Z") } else { iso };
            match d365_odata::parse_filter(&iso, &d365_odata::Aliases::new()) {
                Ok(Expr::Literal(l @ (Literal::Date(_) | Literal::DateTimeOffset(_)))) => l,
                _ => return Err(bad()),
            }
        }
        _ => match d365_odata::parse_filter(t, &d365_odata::Aliases::new()) {
            Ok(Expr::Literal(l @ (Literal::Int(_) | Literal::Number { .. }))) => l,
            _ => return Err(bad()),
        },
    };
    match literal_to_stored(column, &lit) {
        Some(Stored::Exact(v)) => Ok(v),
        Some(Stored::Fractional { whole, .. }) => Ok(whole),
        None => Err(bad()),
    }
}

/// The .NET type name Dataverse prints in conversion errors.
fn clr_type(c: &Column) -> &'static str {
    match c.kind {
        AttrKind::String | AttrKind::Memo | AttrKind::MultiSelectPicklist => "System.String",
        AttrKind::Integer | AttrKind::Picklist | AttrKind::State | AttrKind::Status => "System.Int32",
        AttrKind::BigInt => "System.Int64",
        AttrKind::Decimal | AttrKind::Money => "System.Decimal",
        AttrKind::Double => "System.Double",
        AttrKind::Boolean => "System.Boolean",
        AttrKind::DateTime | AttrKind::DateOnly => "System.DateTime",
        _ => "System.Guid",
    }
}
