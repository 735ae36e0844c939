//! A Web API page read for its paging facts only: the next link, and of each row just the
//! columns named (a partitioned scan needs the partition column and the primary key to place
//! rows and split ranges). Every other value is skipped without being built, so a reader that
//! decodes the page body itself (the SQL engine's Arrow decoder) does not pay for, or hold, a
//! `serde_json::Value` of every cell.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The page: `value` rows holding only the kept columns, and `@odata.nextLink`.
#[derive(Debug, Default)]
pub(crate) struct SlimPage {
    pub(crate) value: Vec<Map<String, Value>>,
    pub(crate) next_link: Option<String>,
}

/// Parses `body` keeping, of each row, only the columns in `keep` (exact names).
pub(crate) fn parse(body: &[u8], keep: &[&str]) -> serde_json::Result<SlimPage> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let page = PageSeed { keep }.deserialize(&mut de)?;
    de.end()?;
    Ok(page)
}

struct PageSeed<'k> {
    keep: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = SlimPage;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<SlimPage, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = SlimPage;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Web API collection page (an object with `value`)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SlimPage, A::Error> {
        let mut page = SlimPage::default();
        let mut seen_value = false;
        while let Some(key) = map.next_key_seed(KeySeed { names: &["value", "@odata.nextLink"] })? {
            match key {
                Some(0) => {
                    page.value = map.next_value_seed(RowsSeed { keep: self.keep })?;
                    seen_value = true;
                }
                Some(_) => page.next_link = map.next_value()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_value {
            return Err(serde::de::Error::missing_field("value"));
        }
        Ok(page)
    }
}

/// A key, answered as its position in `names` (no allocation).
struct KeySeed<'k> {
    names: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a property name")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.names.iter().position(|n| *n == v))
    }
}

struct RowsSeed<'k> {
    keep: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Vec<Map<String, Value>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Vec<Map<String, Value>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(row) = seq.next_element_seed(RowSeed { keep: self.keep })? {
            rows.push(row);
        }
        Ok(rows)
    }
}

struct RowSeed<'k> {
    keep: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Map<String, Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Map<String, Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut row = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed { names: self.keep })? {
            match key {
                Some(i) => {
                    let v: Value = map.next_value()?;
                    row.insert(self.keep[i].to_string(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_the_named_columns_and_the_next_link() {
        let body = json!({
            "@odata.context": "x",
            "value": [
                {"@odata.etag": "W/\"1\"", "accountid": "a1", "name": "Contoso", "createdon": "2024-01-01T00:00:00Z",
                 "address": {"nested": [1, 2, {"deep": true}]}, "name@OData.Community.Display.V1.FormattedValue": "C"},
                {"accountid": "a2", "createdon": null, "revenue": 1.5}
            ],
            "@odata.nextLink": "https://org/api/data/v9.2/accounts?$skiptoken=abc"
        });
        let page = parse(body.to_string().as_bytes(), &["createdon", "accountid"]).unwrap();
        assert_eq!(page.value.len(), 2);
        assert_eq!(
            Value::Object(page.value[0].clone()),
            json!({"accountid": "a1", "createdon": "2024-01-01T00:00:00Z"})
        );
        assert_eq!(Value::Object(page.value[1].clone()), json!({"accountid": "a2", "createdon": null}));
        assert_eq!(page.next_link.as_deref(), Some("https://org/api/data/v9.2/accounts?$skiptoken=abc"));
        // The last page has no link; escaped keys still match.
        let page = parse(br#"{"value":[{"account\u0069d":"a3"}]}"#, &["accountid"]).unwrap();
        assert_eq!(page.value[0]["accountid"], "a3");
        assert_eq!(page.next_link, None);
    }

    #[test]
    fn bad_pages_are_errors() {
        assert!(parse(b"{}", &["x"]).is_err(), "no value array");
        assert!(parse(br#"{"value": {}}"#, &["x"]).is_err());
        assert!(parse(br#"{"value": [1]}"#, &["x"]).is_err());
        assert!(parse(br#"{"value": []} trailing"#, &["x"]).is_err());
        assert!(parse(br#"{"value": [{"x": 1"#, &["x"]).is_err());
    }
}
