//! Values on the wire and in SQLite. Dates and UTC date-times are stored as Unix seconds
//! (dates at midday UTC, as F&O sends them), enums as their integer values, text with
//! `COLLATE NOCASE` (case-insensitive like SQL Server's default collation). On the wire: dates
//! as `2024-01-31T12:00:00Z`, date-times as `2024-01-31T08:15:00Z`, enums as member names with
//! an `@odata.type` annotation, reals as JSON numbers.

use super::error::{FnoError, FnoResult};
use super::model::{DataType, Field, NAMESPACE, enum_def};
use base64::Engine;
use rusqlite::types::Value as Sql;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The empty date `1900-01-01T12:00:00Z` as Unix seconds.
pub const EMPTY_DATE: i64 = -2_208_945_600;
/// The empty date-time `1900-01-01T00:00:00Z` as Unix seconds.
pub const EMPTY_DATETIME: i64 = -2_208_988_800;

/// Midday UTC of the UTC date of `t`.
pub fn midday(t: OffsetDateTime) -> i64 {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    d.with_hms(12, 0, 0).map(|dt| dt.assume_utc().unix_timestamp()).unwrap_or(EMPTY_DATE)
}

/// Formats Unix seconds as `YYYY-MM-DDThh:mm:ssZ`.
pub fn format_utc(secs: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f).unwrap_or_default()
}

/// Parses `2024-01-31T08:15:00Z` (any RFC 3339 offset, optional fraction) or `2024-01-31`.
pub fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &f).ok().map(|d| d.midnight().assume_utc())
}

/// The default of a field a create leaves out.
pub fn default_sql(field: &Field) -> Sql {
    match field.data_type {
        DataType::String => Sql::Text(String::new()),
        DataType::Int32 | DataType::Int64 => Sql::Integer(0),
        DataType::Real => Sql::Real(0.0),
        DataType::Date => Sql::Integer(EMPTY_DATE),
        DataType::UtcDateTime => Sql::Integer(EMPTY_DATETIME),
        DataType::Enum(e) => Sql::Integer(enum_def(e).and_then(|d| d.members.first()).map_or(0, |m| m.1)),
        DataType::Guid => Sql::Text(uuid::Uuid::nil().to_string()),
    }
}

fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

/// Writes `field`'s stored value into a JSON record (with the enum type annotation first).
pub fn put_json(out: &mut Map<String, Value>, field: &Field, v: &Sql) {
    let json = match (field.data_type, v) {
        (_, Sql::Null) => Value::Null,
        (DataType::String | DataType::Guid, Sql::Text(s)) => Value::String(s.clone()),
        (DataType::Int32 | DataType::Int64, Sql::Integer(i)) => Value::from(*i),
        (DataType::Real, Sql::Real(r)) => number(*r),
        (DataType::Real, Sql::Integer(i)) => Value::from(*i),
        (DataType::Date | DataType::UtcDateTime, Sql::Integer(i)) => Value::String(format_utc(*i)),
        (DataType::Enum(e), Sql::Integer(i)) => {
            out.insert(format!("{}@odata.type", field.name), Value::String(format!("#{NAMESPACE}.{e}")));
            let member = enum_def(e).and_then(|d| d.member(*i));
            member.map_or_else(|| Value::from(*i), |m| Value::String(m.to_string()))
        }
        (_, Sql::Text(s)) => Value::String(s.clone()),
        (_, Sql::Integer(i)) => Value::from(*i),
        (_, Sql::Real(r)) => number(*r),
        (_, Sql::Blob(_)) => Value::Null,
    };
    out.insert(field.name.to_string(), json);
}

fn type_error(field: &Field, entity: &str, v: &Value) -> FnoError {
    FnoError::bad_request(format!(
        "Cannot convert the literal '{}' to the expected type '{}' of property '{}' on type '{NAMESPACE}.{entity}'.",
        v.as_str().map_or_else(|| v.to_string(), str::to_string),
        field.data_type.edm(),
        field.name
    ))
}

/// Converts a JSON property value of a request body to its stored form.
pub fn from_json(field: &Field, entity: &str, v: &Value) -> FnoResult<Sql> {
    let bad = || type_error(field, entity, v);
    Ok(match field.data_type {
        _ if v.is_null() => {
            return Err(FnoError::bad_request(format!(
                "A null value was found for the property named '{}', which has the expected type '{}[Nullable=False]'. \
                 The expected type '{}[Nullable=False]' does not allow null values.",
                field.name,
                field.data_type.edm(),
                field.data_type.edm()
            )));
        }
        DataType::String => Sql::Text(v.as_str().ok_or_else(bad)?.to_string()),
        DataType::Int32 => {
            let i = v.as_i64().filter(|i| i32::try_from(*i).is_ok()).ok_or_else(bad)?;
            Sql::Integer(i)
        }
        DataType::Int64 => match v {
            Value::String(s) => Sql::Integer(s.trim().parse().map_err(|_| bad())?),
            _ => Sql::Integer(v.as_i64().ok_or_else(bad)?),
        },
        DataType::Real => match v {
            Value::String(s) => Sql::Real(s.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(bad)?),
            _ => Sql::Real(v.as_f64().ok_or_else(bad)?),
        },
        DataType::Date => Sql::Integer(midday(v.as_str().and_then(parse_datetime).ok_or_else(bad)?)),
        DataType::UtcDateTime => Sql::Integer(v.as_str().and_then(parse_datetime).ok_or_else(bad)?.unix_timestamp()),
        DataType::Enum(e) => {
            let name = v.as_str().ok_or_else(bad)?;
            let def = enum_def(e).ok_or_else(bad)?;
            Sql::Integer(def.value(name).ok_or_else(|| {
                FnoError::bad_request(format!(
                    "The value '{name}' is not a valid member of the enum type '{NAMESPACE}.{e}' of property '{}'.",
                    field.name
                ))
            })?)
        }
        DataType::Guid => {
            let g = v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()).ok_or_else(bad)?;
            Sql::Text(g.to_string())
        }
    })
}

/// The weak ETag of a record: `W/"<base64 of 'RecVersion,RecId'>"` (the quotes inside the
/// base64 are the service's).
pub fn etag(rec_version: i64, rec_id: i64) -> String {
    let inner = base64::engine::general_purpose::STANDARD.encode(format!("'{rec_version},{rec_id}'"));
    format!("W/\"{inner}\"")
}

/// Text of a key value in a record URL: strings quoted (`'` doubled), numbers bare, enums as
/// qualified literals, dates as unquoted date-times.
pub fn key_literal(field: &Field, v: &Sql) -> String {
    match (field.data_type, v) {
        (DataType::Enum(e), Sql::Integer(i)) => {
            let m = enum_def(e).and_then(|d| d.member(*i)).unwrap_or("");
            format!("{NAMESPACE}.{e}'{m}'")
        }
        (DataType::Date | DataType::UtcDateTime, Sql::Integer(i)) => format_utc(*i),
        (_, Sql::Text(s)) => format!("'{}'", s.replace('\'', "''")),
        (_, Sql::Integer(i)) => i.to_string(),
        (_, Sql::Real(r)) => r.to_string(),
        _ => "null".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_etags_and_conversions() {
        assert_eq!(format_utc(EMPTY_DATE), "1900-01-01T12:00:00Z");
        assert_eq!(format_utc(EMPTY_DATETIME), "1900-01-01T00:00:00Z");
        let t = parse_datetime("2024-05-01T23:30:00-02:00").unwrap();
        assert_eq!(format_utc(midday(t)), "2024-05-02T12:00:00Z");
        assert_eq!(format_utc(midday(parse_datetime("2024-05-01").unwrap())), "2024-05-01T12:00:00Z");
        // The sample ETag of the reference: base64 of '1,68719482833'.
        assert_eq!(etag(1, 68719482833), "W/\"JzEsNjg3MTk0ODI4MzMn\"");
        let e = super::super::model::entity("CustomerV3").unwrap();
        let f = e.field("IsSalesTaxIncludedInPrice").unwrap();
        assert_eq!(from_json(f, "CustomerV3", &Value::from("Yes")).unwrap(), Sql::Integer(1));
        assert_eq!(from_json(f, "CustomerV3", &Value::from("Maybe")).unwrap_err().status.as_u16(), 400);
        let mut m = Map::new();
        put_json(&mut m, f, &Sql::Integer(0));
        assert_eq!(m.keys().next().map(String::as_str), Some("IsSalesTaxIncludedInPrice@odata.type"));
        assert_eq!(m["IsSalesTaxIncludedInPrice"], "No");
        let c = e.field("CreditLimit").unwrap();
        assert_eq!(from_json(c, "CustomerV3", &Value::from("12.5")).unwrap(), Sql::Real(12.5));
        assert!(from_json(c, "CustomerV3", &Value::Null).is_err());
        assert!(from_json(c, "CustomerV3", &Value::from("x")).is_err());
    }
}
