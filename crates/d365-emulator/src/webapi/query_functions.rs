//! Dataverse query functions in `$filter` (`Microsoft.Dynamics.CRM.In`, `Between`, `LastXDays`,
//! `EqualUserId`, ...) → SQL. Relative dates are computed in UTC from the emulator's clock
//! (the seeded users' time zone is UTC); weeks start on Sunday.

use super::error::{DvError, DvResult};
use super::filter_sql::{FilterEnv, Stored, literal_edm, literal_to_stored};
use crate::schema::{AttrKind, Column, Table};
use crate::store::codec::format_datetime;
use crate::store::ddl::q;
use axum::http::StatusCode;
use d365_odata::{Expr, Literal, QueryFunction};
use rusqlite::types::Value as Sql;
use time::{Date, Duration, Month, OffsetDateTime, Time};

const NAMESPACE: &str = "Microsoft.Dynamics.CRM";

/// Functions Dataverse has that this emulator does not evaluate (fiscal calendars,
/// hierarchies, team membership, user language).
const NOT_EMULATED: &[&str] = &[
    "InFiscalPeriod",
    "InFiscalPeriodAndYear",
    "InFiscalYear",
    "InOrAfterFiscalPeriodAndYear",
    "InOrBeforeFiscalPeriodAndYear",
    "LastFiscalPeriod",
    "LastFiscalYear",
    "LastXFiscalPeriods",
    "LastXFiscalYears",
    "NextFiscalPeriod",
    "NextFiscalYear",
    "NextXFiscalPeriods",
    "NextXFiscalYears",
    "ThisFiscalPeriod",
    "ThisFiscalYear",
    "Above",
    "AboveOrEqual",
    "Under",
    "UnderOrEqual",
    "NotUnder",
    "EqualUserOrUserHierarchy",
    "EqualUserOrUserHierarchyAndTeams",
    "EqualUserOrUserTeams",
    "EqualUserTeams",
    "EqualUserLanguage",
    "Contains",
];

fn unknown_function(name: &str) -> DvError {
    DvError::bad_query(format!(
        "An unknown function with name '{name}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed."
    ))
}

fn bad_param(f: &QueryFunction, what: &str) -> DvError {
    DvError::bad_query(format!("Invalid parameters for function '{}': {what}", f.name))
}

/// Translates one query function over a row of `table` at `alias`.
pub fn translate(
    env: FilterEnv<'_>,
    table: &Table,
    alias: &str,
    f: &QueryFunction,
    params: &mut Vec<Sql>,
) -> DvResult<String> {
    if f.namespace() != NAMESPACE {
        return Err(unknown_function(&f.name));
    }
    let short = f.short_name();
    if NOT_EMULATED.contains(&short) {
        return Err(DvError::new(
            StatusCode::NOT_IMPLEMENTED,
            "0x80040216",
            format!("The query function {} is not implemented by this emulator.", f.name),
        ));
    }
    let column = property(f, table)?;
    let col = format!("{alias}.{}", q(&column.logical_name));
    let mut push = |v: Sql| {
        params.push(v);
        "?"
    };
    let now = env.now;
    let today = now.date();
    match short {
        "In" | "NotIn" => {
            let values = values(f, column)?;
            if values.is_empty() {
                return Err(bad_param(f, "PropertyValues must not be empty."));
            }
            let marks: Vec<&str> = values.into_iter().map(&mut push).collect();
            let not = if short == "NotIn" { "NOT " } else { "" };
            Ok(format!("({col} {not}IN ({}))", marks.join(", ")))
        }
        "Between" | "NotBetween" => {
            let values = values(f, column)?;
            let [lo, hi] = <[Sql; 2]>::try_from(values)
                .map_err(|_| bad_param(f, "PropertyValues must hold exactly two values."))?;
            let not = if short == "NotBetween" { "NOT " } else { "" };
            Ok(format!("({col} {not}BETWEEN {} AND {})", push(lo), push(hi)))
        }
        "EqualUserId" | "NotEqualUserId" | "EqualBusinessId" | "NotEqualBusinessId" => {
            if !matches!(column.kind, AttrKind::Lookup | AttrKind::Owner | AttrKind::Uniqueidentifier) {
                return Err(bad_param(f, "PropertyName must name a lookup column."));
            }
            let id = if short.ends_with("UserId") {
                env.caller.user.systemuserid.clone()
            } else {
                env.caller.user.business_unit.clone()
            };
            let op = if short.starts_with("Not") { "<>" } else { "=" };
            Ok(format!("({col} {op} {})", push(Sql::Text(id))))
        }
        "ContainValues" | "DoesNotContainValues" => {
            if column.kind != AttrKind::MultiSelectPicklist {
                return Err(bad_param(f, "PropertyName must name a multi-select choice column."));
            }
            let values = values(f, column)?;
            let mut any = Vec::new();
            for v in values {
                let text = match v {
                    Sql::Integer(i) => i.to_string(),
                    Sql::Text(t) => t.trim().to_string(),
                    _ => return Err(bad_param(f, "PropertyValues must be choice values.")),
                };
                any.push(format!("(',' || {col} || ',') LIKE {}", push(Sql::Text(format!("%,{text},%")))));
            }
            let cond = format!("({})", any.join(" OR "));
            Ok(if short == "ContainValues" { cond } else { format!("({col} IS NULL OR NOT {cond})") })
        }
        "On" | "OnOrAfter" | "OnOrBefore" | "NotOn" => {
            let day = date_value(f)?;
            let (lo, hi) = (start_of(day), start_of(day.next_day().unwrap_or(day)));
            let cond = match short {
                "On" => range(column, &col, Some(lo), Some(hi), &mut push),
                "NotOn" => format!("(NOT {})", range(column, &col, Some(lo), Some(hi), &mut push)),
                "OnOrAfter" => range(column, &col, Some(lo), None, &mut push),
                _ => range(column, &col, None, Some(hi), &mut push),
            };
            Ok(cond)
        }
        _ => {
            let (lo, hi) = relative_range(&f.name, short, || int_value(f), now, today)?;
            date_column(f, column)?;
            Ok(range(column, &col, lo, hi, &mut push))
        }
    }
}

/// The `[lo, hi)` range a relative date function selects (`None` = open).
/// The `[lo, hi)` range of relative date function `short` (`Today`, `LastXDays`, ...);
/// `x_value` supplies the count of the `X` functions; `name` is used in errors.
pub(super) fn relative_range(
    name: &str,
    short: &str,
    x_value: impl FnOnce() -> DvResult<i64>,
    now: OffsetDateTime,
    today: Date,
) -> DvResult<(Option<OffsetDateTime>, Option<OffsetDateTime>)> {
    let day = |d: Date| start_of(d);
    let week_start = today - Duration::days(i64::from(today.weekday().number_days_from_sunday()));
    let month_start = today.replace_day(1).unwrap_or(today);
    let year_start = Date::from_calendar_date(today.year(), Month::January, 1).unwrap_or(today);
    let tomorrow = today.next_day().unwrap_or(today);
    // "Up to now" includes the current second (stored instants are whole seconds).
    let until_now = now + Duration::seconds(1);
    Ok(match short {
        "Today" => (Some(day(today)), Some(day(tomorrow))),
        "Tomorrow" => (Some(day(tomorrow)), Some(day(tomorrow.next_day().unwrap_or(tomorrow)))),
        "Yesterday" => (Some(day(today.previous_day().unwrap_or(today))), Some(day(today))),
        "Last7Days" => (Some(day(today - Duration::days(7))), Some(until_now)),
        "Next7Days" => (Some(now), Some(day(today + Duration::days(8)))),
        "ThisWeek" => (Some(day(week_start)), Some(day(week_start + Duration::days(7)))),
        "LastWeek" => (Some(day(week_start - Duration::days(7))), Some(day(week_start))),
        "NextWeek" => (Some(day(week_start + Duration::days(7))), Some(day(week_start + Duration::days(14)))),
        "ThisMonth" => (Some(day(month_start)), Some(day(add_months(month_start, 1)))),
        "LastMonth" => (Some(day(add_months(month_start, -1))), Some(day(month_start))),
        "NextMonth" => (Some(day(add_months(month_start, 1))), Some(day(add_months(month_start, 2)))),
        "ThisYear" => (Some(day(year_start)), Some(day(add_months(year_start, 12)))),
        "LastYear" => (Some(day(add_months(year_start, -12))), Some(day(year_start))),
        "NextYear" => (Some(day(add_months(year_start, 12))), Some(day(add_months(year_start, 24)))),
        _ if !X_FUNCTIONS.contains(&short) => return Err(unknown_function(name)),
        _ => {
            let x = x_value()?;
            match short {
                "LastXHours" => (Some(now - Duration::hours(x)), Some(until_now)),
                "NextXHours" => (Some(now), Some(now + Duration::hours(x))),
                "LastXDays" => (Some(day(today - Duration::days(x))), Some(until_now)),
                "NextXDays" => (Some(now), Some(day(today + Duration::days(x + 1)))),
                "LastXWeeks" => (Some(day(today - Duration::weeks(x))), Some(until_now)),
                "NextXWeeks" => (Some(now), Some(day(today + Duration::weeks(x) + Duration::days(1)))),
                "LastXMonths" => (Some(day(add_months(today, -x))), Some(until_now)),
                "NextXMonths" => (Some(now), Some(day(add_months(today, x).next_day().unwrap_or(today)))),
                "LastXYears" => (Some(day(add_months(today, -12 * x))), Some(until_now)),
                "NextXYears" => (Some(now), Some(day(add_months(today, 12 * x).next_day().unwrap_or(today)))),
                "OlderThanXMinutes" => (None, Some(now - Duration::minutes(x))),
                "OlderThanXHours" => (None, Some(now - Duration::hours(x))),
                "OlderThanXDays" => (None, Some(now - Duration::days(x))),
                "OlderThanXWeeks" => (None, Some(now - Duration::weeks(x))),
                "OlderThanXMonths" => (None, Some(day(add_months(today, -x)))),
                "OlderThanXYears" => (None, Some(day(add_months(today, -12 * x)))),
                _ => return Err(unknown_function(name)),
            }
        }
    })
}

/// Relative date functions that take a count (`PropertyValue=7`).
const X_FUNCTIONS: &[&str] = &[
    "LastXHours",
    "NextXHours",
    "LastXDays",
    "NextXDays",
    "LastXWeeks",
    "NextXWeeks",
    "LastXMonths",
    "NextXMonths",
    "LastXYears",
    "NextXYears",
    "OlderThanXMinutes",
    "OlderThanXHours",
    "OlderThanXDays",
    "OlderThanXWeeks",
    "OlderThanXMonths",
    "OlderThanXYears",
];

/// Midnight UTC at the start of `d`.
pub(super) fn start_of(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_utc()
}

fn add_months(d: Date, n: i64) -> Date {
    let m0 = i64::from(d.year()) * 12 + i64::from(u8::from(d.month())) - 1 + n;
    let (y, m) = (m0.div_euclid(12), (m0.rem_euclid(12) + 1) as u8);
    let month = Month::try_from(m).unwrap_or(Month::January);
    let y = y.clamp(1, 9999) as i32;
    let last = time::util::days_in_month(month, y);
    Date::from_calendar_date(y, month, d.day().min(last)).unwrap_or(d)
}

/// `lo <= col < hi` for a DateTime or DateOnly column.
pub(super) fn range(
    column: &Column,
    col: &str,
    lo: Option<OffsetDateTime>,
    hi: Option<OffsetDateTime>,
    push: &mut impl FnMut(Sql) -> &'static str,
) -> String {
    let text = |t: OffsetDateTime, upper: bool| -> String {
        if column.kind == AttrKind::DateOnly {
            // A date-only value d is inside [lo, hi) when d >= date(lo) and d < ceil(date(hi)).
            let d =
                if upper && t.time() != Time::MIDNIGHT { t.date().next_day().unwrap_or(t.date()) } else { t.date() };
            d.to_string()
        } else {
            format_datetime(t)
        }
    };
    let mut parts = Vec::new();
    if let Some(lo) = lo {
        parts.push(format!("{col} >= {}", push(Sql::Text(text(lo, false)))));
    }
    if let Some(hi) = hi {
        parts.push(format!("{col} < {}", push(Sql::Text(text(hi, true)))));
    }
    if parts.is_empty() { format!("({col} IS NOT NULL)") } else { format!("({})", parts.join(" AND ")) }
}

fn property<'t>(f: &QueryFunction, table: &'t Table) -> DvResult<&'t Column> {
    let name = match f.param("PropertyName") {
        Some(Expr::Literal(Literal::String(s))) => s.clone(),
        Some(Expr::Path(p)) if p.single().is_some() => p.single().unwrap_or_default().to_string(),
        Some(_) => return Err(bad_param(f, "PropertyName must be a string with a column's logical name.")),
        None => return Err(bad_param(f, "the PropertyName parameter is required.")),
    };
    table
        .column(&name)
        .or_else(|| table.column_by_property(&name))
        .ok_or_else(|| DvError::unknown_property(&name, &table.logical_name))
}

fn date_column(f: &QueryFunction, c: &Column) -> DvResult<()> {
    if matches!(c.kind, AttrKind::DateTime | AttrKind::DateOnly) {
        Ok(())
    } else {
        Err(bad_param(f, &format!("'{}' is not a date and time column.", c.logical_name)))
    }
}

fn int_value(f: &QueryFunction) -> DvResult<i64> {
    let v = match f.param("PropertyValue") {
        Some(Expr::Literal(Literal::Int(i))) => Some(*i),
        Some(Expr::Literal(Literal::String(s))) => s.trim().parse().ok(),
        _ => None,
    };
    v.filter(|x| (0..=100_000).contains(x)).ok_or_else(|| bad_param(f, "PropertyValue must be a non-negative integer."))
}

fn date_value(f: &QueryFunction) -> DvResult<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    match f.param("PropertyValue") {
        Some(Expr::Literal(Literal::String(s))) => Date::parse(s.trim().get(..10).unwrap_or(""), &fmt).ok(),
        Some(Expr::Literal(Literal::Date(d))) => Date::parse(&d.to_string(), &fmt).ok(),
        Some(Expr::Literal(Literal::DateTimeOffset(d))) => Date::parse(&d.date.to_string(), &fmt).ok(),
        _ => None,
    }
    .ok_or_else(|| bad_param(f, "PropertyValue must be a date ('YYYY-MM-DD')."))
}

/// `PropertyValues=[...]` converted to the stored form of `column`. Values may be written as
/// strings whatever the column type (`['1','2']` for a choice column).
fn values(f: &QueryFunction, column: &Column) -> DvResult<Vec<Sql>> {
    let Some(Expr::Array(items)) = f.param("PropertyValues") else {
        return Err(bad_param(f, "the PropertyValues parameter must be an array (PropertyValues=['a','b'])."));
    };
    items
        .iter()
        .map(|lit| {
            let typed = retype(column, lit);
            match literal_to_stored(column, &typed) {
                Some(Stored::Exact(v)) => Ok(v),
                Some(Stored::Fractional { whole, .. }) => Ok(whole),
                None => Err(DvError::bad_query(format!(
                    "Cannot convert the literal '{lit}' ({}) to the expected type '{}'.",
                    literal_edm(lit),
                    column.kind.edm_type()
                ))),
            }
        })
        .collect()
}

/// Reads a string array item as the column's literal type.
fn retype(column: &Column, lit: &Literal) -> Literal {
    let Literal::String(s) = lit else { return lit.clone() };
    let s = s.trim();
    let aliases = d365_odata::Aliases::new();
    match column.kind {
        AttrKind::String | AttrKind::Memo | AttrKind::MultiSelectPicklist => lit.clone(),
        AttrKind::Uniqueidentifier | AttrKind::Lookup | AttrKind::Customer | AttrKind::Owner => lit.clone(),
        _ => match d365_odata::parse_filter(s, &aliases) {
            Ok(Expr::Literal(l)) => l,
            _ => lit.clone(),
        },
    }
}
