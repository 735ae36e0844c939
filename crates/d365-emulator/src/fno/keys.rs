//! Key predicates of record URLs: `CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')`
//! (named, any order, every key property required) or `LegalEntities('usmf')` (the bare form,
//! for single-key entities). Values: quoted strings (`''` escapes a quote), numbers, enum
//! literals `Microsoft.Dynamics.DataEntities.NoYes'Yes'`, unquoted date-times.

use super::error::{FnoError, FnoResult};
use super::model::{DataType, Entity, Field, NAMESPACE, enum_def};
use super::values::{midday, parse_datetime};
use rusqlite::types::Value as Sql;

/// A parsed key: one value per key property, in the entity's key order.
#[derive(Debug, Clone)]
pub struct Key(pub Vec<(&'static Field, Sql)>);

impl Key {
    /// The value of key property `name`.
    pub fn get(&self, name: &str) -> Option<&Sql> {
        self.0.iter().find(|(f, _)| f.name == name).map(|(_, v)| v)
    }

    /// `"k1" = ? AND "k2" = ?` and its parameters.
    pub fn condition(&self) -> (String, Vec<Sql>) {
        let sql: Vec<String> = self.0.iter().map(|(f, _)| format!("\"{}\" = ?", f.name)).collect();
        (sql.join(" AND "), self.0.iter().map(|(_, v)| v.clone()).collect())
    }

    /// The key as it appears in a record URL.
    pub fn url_text(&self) -> String {
        let parts: Vec<String> =
            self.0.iter().map(|(f, v)| format!("{}={}", f.name, super::values::key_literal(f, v))).collect();
        parts.join(",")
    }
}

fn bad_count(entity: &Entity) -> FnoError {
    FnoError::bad_request(format!(
        "The number of keys specified in the URI does not match number of key properties for the resource \
         '{NAMESPACE}.{}'.",
        entity.name
    ))
}

/// Splits on commas outside single quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        if c == '\'' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses the text between the parentheses of a record URL.
pub fn parse(text: &str, entity: &'static Entity) -> FnoResult<Key> {
    let parts = split_outside_quotes(text, ',');
    let mut values: Vec<(&'static Field, Sql)> = Vec::new();
    if parts.len() == 1 && entity.keys.len() == 1 && !has_top_level_eq(parts[0]) {
        let f = entity.field(entity.keys[0]).ok_or_else(|| bad_count(entity))?;
        values.push((f, value(f, parts[0].trim(), entity)?));
    } else {
        for p in parts {
            let Some((name, v)) = p.split_once('=').filter(|(n, _)| !n.contains('\'')) else {
                return Err(bad_count(entity));
            };
            let name = name.trim();
            let f = entity.field(name).filter(|f| entity.is_key(f.name)).ok_or_else(|| {
                FnoError::bad_request(format!(
                    "The key property '{name}' is not a key property of the type '{NAMESPACE}.{}'.",
                    entity.name
                ))
            })?;
            if values.iter().any(|(x, _)| x.name == f.name) {
                return Err(FnoError::bad_request(format!("The key property '{name}' is given twice.")));
            }
            values.push((f, value(f, v.trim(), entity)?));
        }
    }
    if values.len() != entity.keys.len() {
        return Err(bad_count(entity));
    }
    values.sort_by_key(|(f, _)| entity.keys.iter().position(|k| *k == f.name));
    Ok(Key(values))
}

fn has_top_level_eq(s: &str) -> bool {
    split_outside_quotes(s, '=').len() > 1
}

fn value(f: &Field, v: &str, entity: &Entity) -> FnoResult<Sql> {
    let bad = || {
        FnoError::bad_request(format!(
            "The key value {v} of the property '{}' of type '{NAMESPACE}.{}' is not a valid '{}' literal.",
            f.name,
            entity.name,
            f.data_type.edm()
        ))
    };
    let quoted = |s: &str| -> Option<String> {
        let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
        // Inside, quotes come in pairs.
        (!inner.replace("''", "").contains('\'')).then(|| inner.replace("''", "'"))
    };
    Ok(match f.data_type {
        DataType::String => {
            let s = quoted(v).ok_or_else(bad)?;
            if f.name == "dataAreaId" { Sql::Text(s.to_ascii_lowercase()) } else { Sql::Text(s) }
        }
        DataType::Guid => {
            let s = quoted(v).unwrap_or_else(|| v.to_string());
            Sql::Text(uuid::Uuid::parse_str(&s).map_err(|_| bad())?.to_string())
        }
        DataType::Int32 | DataType::Int64 => Sql::Integer(v.trim_end_matches(['L', 'l']).parse().map_err(|_| bad())?),
        DataType::Real => {
            Sql::Real(v.trim_end_matches(['M', 'm']).parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(bad)?)
        }
        DataType::Date => Sql::Integer(midday(parse_datetime(v).ok_or_else(bad)?)),
        DataType::UtcDateTime => Sql::Integer(parse_datetime(v).ok_or_else(bad)?.unix_timestamp()),
        DataType::Enum(e) => {
            let member = v
                .strip_prefix(&format!("{NAMESPACE}.{e}"))
                .and_then(|m| m.strip_prefix('\'')?.strip_suffix('\''))
                .ok_or_else(bad)?;
            Sql::Integer(enum_def(e).and_then(|d| d.value(member)).ok_or_else(bad)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_bare_and_refused_keys() {
        let c = super::super::model::entity("CustomerV3").unwrap();
        let k = parse("CustomerAccount='US-001',dataAreaId='USMF'", c).unwrap();
        assert_eq!(k.get("dataAreaId"), Some(&Sql::Text("usmf".into())));
        assert_eq!(k.url_text(), "dataAreaId='usmf',CustomerAccount='US-001'");
        let k = parse("dataAreaId='usmf',CustomerAccount='O''Brien, Inc'", c).unwrap();
        assert_eq!(k.get("CustomerAccount"), Some(&Sql::Text("O'Brien, Inc".into())));
        for bad in [
            "'US-001'",
            "dataAreaId='usmf'",
            "dataAreaId='usmf',CustomerAccount=US-001",
            "dataAreaId='usmf',CustomerAccount='a',CustomerAccount='b'",
            "dataAreaId='usmf',Nope='x'",
            "",
            "=,=",
            "dataAreaId='usmf,CustomerAccount='x'",
        ] {
            assert_eq!(parse(bad, c).unwrap_err().status.as_u16(), 400, "{bad}");
        }
        let l = super::super::model::entity("LegalEntity").unwrap();
        assert!(parse("'usmf'", l).is_ok());
    }
}
