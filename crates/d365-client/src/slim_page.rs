//! A Web API page read for its paging facts only: the next link, and of each row just the
//! columns named (a partitioned scan needs the partition column and the primary key to place
//! rows and split ranges). Every other value is skipped without being built, so a reader that
//! decodes the page body itself (the SQL engine's Arrow decoder) does not pay for, or hold, a
//! `serde_json::Value` of every cell.

use serde_json::{Map, Value};

use crate::json_scan::{ScanError, Scanner, Token};

/// The page: `value` rows holding only the kept columns, and `@odata.nextLink`.
#[derive(Debug, Default)]
pub(crate) struct SlimPage {
    pub(crate) value: Vec<Map<String, Value>>,
    pub(crate) next_link: Option<String>,
}

/// Parses `body` keeping, of each row, only the columns in `keep` (exact names), with the
/// scanner the Arrow decoder uses: every other value is skipped, strings by looking for their
/// closing quote only.
pub(crate) fn parse(body: &[u8], keep: &[&str]) -> Result<SlimPage, ScanError> {
    let mut s = Scanner::from_bytes(body);
    let mut page = SlimPage::default();
    let mut seen_value = false;
    if s.peek() != Some(b'{') {
        return Err(s.error("expected a Web API collection page (an object with `value`)"));
    }
    if s.open(b'{', b'}')? {
        loop {
            match key_in(&mut s, &["value", "@odata.nextLink"])? {
                Some(0) => {
                    page.value = rows(&mut s, keep)?;
                    seen_value = true;
                }
                Some(_) => {
                    page.next_link = match s.token()? {
                        Token::Str(link) => Some(link.into_owned()),
                        Token::Null => None,
                        _ => return Err(s.error("@odata.nextLink is not a string")),
                    }
                }
                None => s.skip_value()?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    if !s.at_end() {
        return Err(s.error("trailing characters after the page"));
    }
    if !seen_value {
        return Err(s.error("the page has no `value` array"));
    }
    Ok(page)
}

/// The next key (and its colon) as its position in `names`. A key without escapes is compared
/// as bytes, without a UTF-8 check: the page's text is checked where values are kept.
fn key_in(s: &mut Scanner, names: &[&str]) -> Result<Option<usize>, ScanError> {
    if s.peek() != Some(b'"') {
        return Err(s.error("expected a property name"));
    }
    let found = match s.plain_span()? {
        Some((start, end)) => {
            let raw = &s.bytes()[start..end];
            names.iter().position(|n| n.as_bytes() == raw)
        }
        None => {
            let key = s.string()?;
            names.iter().position(|n| *n == key.as_ref())
        }
    };
    s.expect(b':')?;
    Ok(found)
}

fn rows(s: &mut Scanner, keep: &[&str]) -> Result<Vec<Map<String, Value>>, ScanError> {
    let mut rows = Vec::new();
    if s.peek() != Some(b'[') {
        return Err(s.error("`value` is not an array of rows"));
    }
    if s.open(b'[', b']')? {
        loop {
            rows.push(row(s, keep)?);
            if !s.more(b']')? {
                break;
            }
        }
    }
    Ok(rows)
}

fn row(s: &mut Scanner, keep: &[&str]) -> Result<Map<String, Value>, ScanError> {
    let mut row = Map::new();
    if s.peek() != Some(b'{') {
        return Err(s.error("a row is not an object"));
    }
    if s.open(b'{', b'}')? {
        loop {
            match key_in(s, keep)? {
                Some(i) => {
                    let value = match s.token()? {
                        Token::Null => Value::Null,
                        Token::Bool(b) => Value::Bool(b),
                        Token::Str(text) => Value::String(text.into_owned()),
                        Token::Number(text) => {
                            serde_json::from_str(text).map_err(|e| s.error(format!("bad number {text}: {e}")))?
                        }
                        Token::Nested => return Err(s.error(format!("column {} holds an object or array", keep[i]))),
                    };
                    row.insert(keep[i].to_string(), value);
                }
                None => s.skip_value()?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    Ok(row)
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
