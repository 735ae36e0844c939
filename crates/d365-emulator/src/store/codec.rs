//! How each attribute type is stored in SQLite, written as Web API JSON, parsed from request
//! bodies and formatted for `OData.Community.Display.V1.FormattedValue`.
//!
//! Storage: text columns are `TEXT COLLATE NOCASE` (Dataverse compares strings without
//! regard to case); Money and Decimal are scaled integers (exact comparisons and sums);
//! DateTime is ISO-8601 UTC text (`2023-04-07T21:59:01Z`, which sorts chronologically);
//! DateOnly is `YYYY-MM-DD`; GUIDs are lower-case text; Boolean is 0/1; multi-select
//! choices are a comma list (`1,9`).

use crate::schema::{AttrKind, Column};
use rusqlite::types::Value as Sql;
use serde_json::Value as Json;
use std::fmt::Write;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Decimal digits kept in storage for Money and Decimal columns.
pub fn storage_scale(c: &Column) -> Option<u32> {
    match c.kind {
        AttrKind::Money => Some(4),
        AttrKind::Decimal => Some(c.precision.unwrap_or(2)),
        _ => None,
    }
}

/// SQLite type declaration of a column.
pub fn sql_type(c: &Column) -> &'static str {
    match c.kind {
        AttrKind::String | AttrKind::Memo | AttrKind::MultiSelectPicklist => "TEXT COLLATE NOCASE",
        AttrKind::DateTime | AttrKind::DateOnly | AttrKind::Uniqueidentifier => "TEXT",
        AttrKind::Lookup | AttrKind::Customer | AttrKind::Owner => "TEXT",
        AttrKind::Double => "REAL",
        _ => "INTEGER",
    }
}

/// Writes a stored value as a JSON literal into `out`.
pub fn write_json(out: &mut String, c: &Column, v: &Sql) {
    match (c.kind, v) {
        (_, Sql::Null) => out.push_str("null"),
        (AttrKind::Boolean, Sql::Integer(i)) => out.push_str(if *i != 0 { "true" } else { "false" }),
        (AttrKind::Money | AttrKind::Decimal, Sql::Integer(i)) => {
            write_scaled(out, *i, storage_scale(c).unwrap_or(0));
        }
        (_, Sql::Integer(i)) => {
            let _ = write!(out, "{i}");
        }
        (_, Sql::Real(f)) if f.is_finite() => {
            let _ = write!(out, "{f:?}");
        }
        (_, Sql::Real(_)) => out.push_str("null"),
        (_, Sql::Text(s)) => write_json_str(out, s),
        (_, Sql::Blob(_)) => out.push_str("null"),
    }
}

/// Writes `s` as a JSON string literal (runs without escapes are copied whole).
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Writes a scaled integer as a decimal with exactly `scale` digits after the point.
pub fn write_scaled(out: &mut String, v: i64, scale: u32) {
    if scale == 0 {
        let _ = write!(out, "{v}");
        return;
    }
    let p = 10i128.pow(scale);
    let v = v as i128;
    let sign = if v < 0 { "-" } else { "" };
    let a = v.abs();
    let _ = write!(out, "{sign}{}.{:0width$}", a / p, a % p, width = scale as usize);
}

/// The decimal text of a scaled integer.
pub fn scaled_to_string(v: i64, scale: u32) -> String {
    let mut s = String::new();
    write_scaled(&mut s, v, scale);
    s
}

/// Why a request value cannot be stored in a column.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueError {
    /// Wrong JSON type or unparsable text (OData reader error).
    Type(String),
    /// Outside the column's rules (validation error).
    Invalid(String),
}

fn type_err(v: &Json, edm: &str) -> ValueError {
    let lit = match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    ValueError::Type(format!("Cannot convert the literal '{lit}' to the expected type '{edm}'."))
}

/// Parses a number from a JSON number or a numeric string (Dataverse accepts both).
fn json_f64(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn json_i64(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18).map(|f| f as i64))
        }
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Normalises an ISO-8601 date-time to the stored UTC form.
pub fn parse_datetime(s: &str) -> Option<String> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .or_else(|| OffsetDateTime::parse(&format!("{}Z", s.trim()), &Rfc3339).ok())?;
    Some(format_datetime(t))
}

/// The stored form of an instant.
pub fn format_datetime(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Validates a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    let d = s.get(..10)?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(d, &fmt).ok()?;
    if s.len() > 10 && !s[10..].starts_with('T') {
        return None;
    }
    Some(d.to_string())
}

/// Converts a request JSON value into the stored value of column `c` (not for lookups).
pub fn from_json(c: &Column, table: &str, v: &Json) -> Result<Sql, ValueError> {
    if v.is_null() {
        return Ok(Sql::Null);
    }
    let edm = c.kind.edm_type();
    let range = |x: f64| -> Result<(), ValueError> {
        if c.min_value.is_some_and(|m| x < m) || c.max_value.is_some_and(|m| x > m) {
            return Err(ValueError::Invalid(format!(
                "The value {x} of '{}' on record of type '{table}' is outside the valid range. Accepted range: {} to {}",
                c.logical_name,
                c.min_value.unwrap_or(f64::MIN),
                c.max_value.unwrap_or(f64::MAX)
            )));
        }
        Ok(())
    };
    match c.kind {
        AttrKind::String | AttrKind::Memo => {
            let Json::String(s) = v else { return Err(type_err(v, edm)) };
            if let Some(max) = c.max_length
                && s.chars().count() > max as usize
            {
                return Err(ValueError::Invalid(format!(
                    "The length of the '{}' attribute of the '{table}' entity exceeded the maximum allowed length of '{max}'.",
                    c.logical_name
                )));
            }
            Ok(Sql::Text(s.clone()))
        }
        AttrKind::Integer | AttrKind::BigInt => {
            let i = json_i64(v).ok_or_else(|| type_err(v, edm))?;
            range(i as f64)?;
            Ok(Sql::Integer(i))
        }
        AttrKind::Decimal | AttrKind::Money => {
            let f = json_f64(v).filter(|f| f.is_finite()).ok_or_else(|| type_err(v, edm))?;
            range(f)?;
            let scale = 10f64.powi(storage_scale(c).unwrap_or(0) as i32);
            Ok(Sql::Integer((f * scale).round() as i64))
        }
        AttrKind::Double => {
            let f = json_f64(v).filter(|f| f.is_finite()).ok_or_else(|| type_err(v, edm))?;
            range(f)?;
            Ok(Sql::Real(f))
        }
        AttrKind::Boolean => match v {
            Json::Bool(b) => Ok(Sql::Integer(*b as i64)),
            _ => Err(type_err(v, edm)),
        },
        AttrKind::DateTime => {
            let Json::String(s) = v else { return Err(type_err(v, edm)) };
            let d = parse_datetime(s).ok_or_else(|| type_err(v, edm))?;
            check_min_date(c, &d)?;
            Ok(Sql::Text(d))
        }
        AttrKind::DateOnly => {
            let Json::String(s) = v else { return Err(type_err(v, edm)) };
            let d = parse_date(s).ok_or_else(|| type_err(v, "Edm.Date"))?;
            check_min_date(c, &d)?;
            Ok(Sql::Text(d))
        }
        AttrKind::Uniqueidentifier => {
            let Json::String(s) = v else { return Err(type_err(v, edm)) };
            let id = uuid::Uuid::parse_str(s.trim()).map_err(|_| type_err(v, edm))?;
            Ok(Sql::Text(id.to_string()))
        }
        AttrKind::Picklist | AttrKind::State | AttrKind::Status => {
            let i = json_i64(v).ok_or_else(|| type_err(v, edm))?;
            check_option(c, table, i)?;
            Ok(Sql::Integer(i))
        }
        AttrKind::MultiSelectPicklist => {
            let Json::String(s) = v else { return Err(type_err(v, edm)) };
            let mut values = Vec::new();
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let i: i64 = part.parse().map_err(|_| type_err(v, edm))?;
                check_option(c, table, i)?;
                if !values.contains(&i) {
                    values.push(i);
                }
            }
            if values.len() > 150 {
                return Err(ValueError::Invalid(format!(
                    "At most 150 choices can be selected for '{}'.",
                    c.logical_name
                )));
            }
            Ok(if values.is_empty() {
                Sql::Null
            } else {
                Sql::Text(values.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
            })
        }
        AttrKind::Lookup | AttrKind::Customer | AttrKind::Owner => Err(ValueError::Type(format!(
            "Lookup '{}' must be set with '{}@odata.bind'.",
            c.logical_name, c.logical_name
        ))),
    }
}

fn check_min_date(c: &Column, d: &str) -> Result<(), ValueError> {
    if d < "1753-01-01" {
        return Err(ValueError::Invalid(format!(
            "The date-time format for '{}' is invalid, or value is outside the supported range (dates before 1/1/1753 are not supported).",
            c.logical_name
        )));
    }
    Ok(())
}

fn check_option(c: &Column, table: &str, i: i64) -> Result<(), ValueError> {
    if c.options.iter().any(|o| o.value as i64 == i) {
        return Ok(());
    }
    let accepted: Vec<String> = c.options.iter().map(|o| o.value.to_string()).collect();
    Err(ValueError::Invalid(format!(
        "The value {i} of '{}' on record of type '{table}' is outside the valid range. Accepted Values: {}",
        c.logical_name,
        accepted.join(",")
    )))
}

fn group_thousands(int_part: &str) -> String {
    let (sign, digits) = int_part.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", int_part));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

fn format_fixed(x: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, x.abs());
    let (i, f) = s.split_once('.').map(|(i, f)| (i.to_string(), Some(f.to_string()))).unwrap_or((s.clone(), None));
    let sign = if x < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') { "-" } else { "" };
    match f {
        Some(f) => format!("{sign}{}.{f}", group_thousands(&i)),
        None => format!("{sign}{}", group_thousands(&i)),
    }
}

/// The formatted value of a stored value (en-US, UTC), or `None` where Dataverse gives none.
/// Lookup names are resolved by the caller.
pub fn formatted(c: &Column, v: &Sql, currency_symbol: &str) -> Option<String> {
    match (c.kind, v) {
        (_, Sql::Null) => None,
        (AttrKind::Boolean | AttrKind::Picklist | AttrKind::State | AttrKind::Status, Sql::Integer(i)) => {
            c.option_label(*i as i32).map(str::to_string)
        }
        (AttrKind::MultiSelectPicklist, Sql::Text(s)) => Some(
            s.split(',')
                .filter_map(|p| p.parse::<i32>().ok())
                .filter_map(|i| c.option_label(i))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (AttrKind::Integer | AttrKind::BigInt, Sql::Integer(i)) => Some(group_thousands(&i.to_string())),
        (AttrKind::Money, Sql::Integer(i)) => {
            let x = *i as f64 / 10_000.0;
            let body = format_fixed(x.abs(), c.precision.unwrap_or(2) as usize);
            Some(if x < 0.0 { format!("-{currency_symbol}{body}") } else { format!("{currency_symbol}{body}") })
        }
        (AttrKind::Decimal, Sql::Integer(i)) => {
            let scale = storage_scale(c).unwrap_or(0);
            Some(format_fixed(*i as f64 / 10f64.powi(scale as i32), scale as usize))
        }
        (AttrKind::Double, Sql::Real(f)) => Some(format_fixed(*f, c.precision.unwrap_or(2) as usize)),
        (AttrKind::DateTime, Sql::Text(s)) => {
            let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
            let (h, ampm) = match t.hour() {
                0 => (12, "AM"),
                h @ 1..=11 => (h, "AM"),
                12 => (12, "PM"),
                h => (h - 12, "PM"),
            };
            Some(format!("{}/{}/{} {}:{:02} {}", u8::from(t.month()), t.day(), t.year(), h, t.minute(), ampm))
        }
        (AttrKind::DateOnly, Sql::Text(s)) => {
            let mut parts = s.split('-');
            let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
            Some(format!("{}/{}/{}", m.trim_start_matches('0'), d.trim_start_matches('0'), y))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut o = String::new();
        write_json_str(&mut o, "a\"b\\c\nd\u{1}é€");
        assert_eq!(o, "\"a\\\"b\\\\c\\nd\\u0001é€\"");
        let v: serde_json::Value = serde_json::from_str(&o).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é€");
    }
    use crate::schema::Schema;

    fn col<'a>(s: &'a Schema, t: &str, c: &str) -> &'a Column {
        s.table(t).unwrap().column(c).unwrap()
    }

    #[test]
    fn money_is_exact_and_formatted() {
        let s = Schema::builtin();
        let c = col(&s, "account", "revenue");
        let v = from_json(c, "account", &serde_json::json!(20000.5)).unwrap();
        assert_eq!(v, Sql::Integer(200_005_000));
        let mut out = String::new();
        write_json(&mut out, c, &v);
        assert_eq!(out, "20000.5000");
        assert_eq!(formatted(c, &v, "$").unwrap(), "$20,000.50");
        assert_eq!(formatted(c, &Sql::Integer(-12_345_678), "$").unwrap(), "-$1,234.57");
        assert_eq!(scaled_to_string(-5, 4), "-0.0005");
    }

    #[test]
    fn validation_errors_name_the_rule() {
        let s = Schema::builtin();
        let name = col(&s, "account", "name");
        let long = "x".repeat(161);
        assert!(
            matches!(from_json(name, "account", &serde_json::json!(long)), Err(ValueError::Invalid(m)) if m.contains("maximum allowed length of '160'"))
        );
        assert!(matches!(from_json(name, "account", &serde_json::json!(5)), Err(ValueError::Type(_))));
        let ind = col(&s, "account", "industrycode");
        assert!(
            matches!(from_json(ind, "account", &serde_json::json!(999)), Err(ValueError::Invalid(m)) if m.contains("Accepted Values"))
        );
        let n = col(&s, "account", "numberofemployees");
        assert_eq!(from_json(n, "account", &serde_json::json!("200")).unwrap(), Sql::Integer(200));
        assert!(from_json(n, "account", &serde_json::json!(3_000_000_000i64)).is_err());
        let d = col(&s, "contact", "birthdate");
        assert_eq!(from_json(d, "contact", &serde_json::json!("1990-02-03")).unwrap(), Sql::Text("1990-02-03".into()));
        assert!(from_json(d, "contact", &serde_json::json!("1700-01-01")).is_err());
        let w = s.table("new_widget").unwrap();
        let dt = w.column("new_lastinspectedon").unwrap();
        assert_eq!(
            from_json(dt, "new_widget", &serde_json::json!("2023-04-07T14:59:01.123-07:00")).unwrap(),
            Sql::Text("2023-04-07T21:59:01Z".into())
        );
        let tags = w.column("new_tags").unwrap();
        assert_eq!(
            from_json(tags, "new_widget", &serde_json::json!("100000002, 100000000")).unwrap(),
            Sql::Text("100000002,100000000".into())
        );
        assert_eq!(formatted(tags, &Sql::Text("100000002,100000000".into()), "$").unwrap(), "Blue; Red");
        assert_eq!(formatted(dt, &Sql::Text("2023-04-07T21:59:01Z".into()), "$").unwrap(), "4/7/2023 9:59 PM");
    }
}
