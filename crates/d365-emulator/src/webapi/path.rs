//! The resource path of a Web API URL (what follows `/api/data/v9.2/`).

use super::error::{DvError, DvResult};
use uuid::Uuid;

/// A record key in a URL.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    /// `accounts(00000000-0000-0000-0000-000000000001)`.
    Id(Uuid),
    /// `contacts(firstname='Joe',emailaddress1='abc@example.com')`: (property, literal) pairs,
    /// the literal already unquoted.
    Alternate(Vec<(String, KeyValue)>),
}

/// A literal inside an alternate key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// `'text'`.
    Text(String),
    /// An unquoted number, GUID or `true`/`false`.
    Bare(String),
}

/// What a URL addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// `GET /api/data/v9.2/`.
    ServiceDocument,
    /// `$metadata`.
    Metadata,
    /// `$batch`.
    Batch,
    /// A metadata entity set path (`EntityDefinitions(...)/Attributes...`), passed on whole.
    MetadataPath(String),
    /// An unbound function or action by name (`WhoAmI`, `RetrieveTotalRecordCount(...)`).
    Operation {
        /// Name.
        name: String,
        /// Raw text inside the parentheses, if any.
        args: Option<String>,
    },
    /// An entity set.
    Collection(String),
    /// `<set>/$count`.
    Count(String),
    /// `<set>/Microsoft.Dynamics.CRM.<Action>`.
    BoundAction {
        /// Entity set.
        set: String,
        /// Action name without the namespace.
        action: String,
    },
    /// One record.
    Record {
        /// Entity set.
        set: String,
        /// Key.
        key: Key,
    },
    /// Something under one record: a property (`/name`, `/name/$value`), a navigation
    /// property (`/primarycontactid`, `/contact_customer_accounts`), or a `$ref`.
    RecordPart {
        /// Entity set.
        set: String,
        /// Key.
        key: Key,
        /// The remaining segments.
        segments: Vec<String>,
    },
}

const METADATA_SETS: &[&str] = &["EntityDefinitions", "RelationshipDefinitions", "GlobalOptionSetDefinitions"];

/// Splits on `/` outside parentheses and quotes.
fn segments(path: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quoted) = (Vec::new(), String::new(), 0i32, false);
    for ch in path.chars() {
        match ch {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            '/' if !quoted && depth <= 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur);
    out
}

/// Splits `name(args)` into the name and the text inside the outer parentheses.
fn name_and_args(seg: &str) -> DvResult<(String, Option<String>)> {
    match seg.find('(') {
        None => Ok((seg.to_string(), None)),
        Some(open) => {
            if !seg.ends_with(')') {
                return Err(DvError::bad_query(format!("Bad Request - Error in query syntax: '{seg}'.")));
            }
            Ok((seg[..open].to_string(), Some(seg[open + 1..seg.len() - 1].to_string())))
        }
    }
}

/// Parses the inside of a key's parentheses.
pub fn parse_key(text: &str) -> DvResult<Key> {
    let t = text.trim();
    if let Ok(id) = Uuid::parse_str(t.trim_matches(|c| c == '{' || c == '}')) {
        return Ok(Key::Id(id));
    }
    let bad = || DvError::bad_query(format!("Bad Request - Error in query syntax: the key '({text})' is not valid."));
    let mut parts = Vec::new();
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i] != '=' {
            i += 1;
        }
        if i >= chars.len() {
            return Err(bad());
        }
        let name: String = chars[start..i].iter().collect::<String>().trim().to_string();
        if name.is_empty() {
            return Err(bad());
        }
        i += 1;
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        let value = if i < chars.len() && chars[i] == '\'' {
            i += 1;
            let mut s = String::new();
            loop {
                if i >= chars.len() {
                    return Err(bad());
                }
                if chars[i] == '\'' {
                    if i + 1 < chars.len() && chars[i + 1] == '\'' {
                        s.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                s.push(chars[i]);
                i += 1;
            }
            KeyValue::Text(s)
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ',' {
                i += 1;
            }
            let v: String = chars[start..i].iter().collect::<String>().trim().to_string();
            if v.is_empty() {
                return Err(bad());
            }
            KeyValue::Bare(v)
        };
        parts.push((name, value));
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        if i < chars.len() {
            if chars[i] != ',' {
                return Err(bad());
            }
            i += 1;
        }
    }
    if parts.is_empty() {
        return Err(bad());
    }
    Ok(Key::Alternate(parts))
}

/// Parses a decoded resource path.
pub fn parse(path: &str) -> DvResult<Resource> {
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return Ok(Resource::ServiceDocument);
    }
    let segs = segments(path.trim_end_matches('/'));
    let first = &segs[0];
    match first.as_str() {
        "$metadata" => return Ok(Resource::Metadata),
        "$batch" => return Ok(Resource::Batch),
        _ => {}
    }
    let (name, args) = name_and_args(first)?;
    if METADATA_SETS.contains(&name.as_str()) {
        return Ok(Resource::MetadataPath(path.to_string()));
    }
    // Entity sets are lower case; operations (WhoAmI, RetrieveTotalRecordCount) start upper case.
    if name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && segs.len() == 1 {
        return Ok(Resource::Operation { name, args });
    }
    match (args, segs.len()) {
        (None, 1) => Ok(Resource::Collection(name)),
        (None, 2) if segs[1] == "$count" => Ok(Resource::Count(name)),
        (None, 2) if segs[1].starts_with("Microsoft.Dynamics.CRM.") => Ok(Resource::BoundAction {
            set: name,
            action: segs[1].trim_start_matches("Microsoft.Dynamics.CRM.").to_string(),
        }),
        (None, _) => Err(DvError::segment_not_found(&segs[1])),
        (Some(k), 1) => Ok(Resource::Record { set: name, key: parse_key(&k)? }),
        (Some(k), _) => Ok(Resource::RecordPart { set: name, key: parse_key(&k)?, segments: segs[1..].to_vec() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("").unwrap(), Resource::ServiceDocument);
        assert_eq!(parse("accounts").unwrap(), Resource::Collection("accounts".into()));
        assert_eq!(parse("accounts/$count").unwrap(), Resource::Count("accounts".into()));
        assert_eq!(parse("WhoAmI").unwrap(), Resource::Operation { name: "WhoAmI".into(), args: None });
        let id = "00000000-0000-0000-0000-000000000001";
        assert_eq!(
            parse(&format!("accounts({id})")).unwrap(),
            Resource::Record { set: "accounts".into(), key: Key::Id(Uuid::parse_str(id).unwrap()) }
        );
        assert_eq!(
            parse("contacts(firstname='O''Brien',emailaddress1='a/b@x.com')/fullname").unwrap(),
            Resource::RecordPart {
                set: "contacts".into(),
                key: Key::Alternate(vec![
                    ("firstname".into(), KeyValue::Text("O'Brien".into())),
                    ("emailaddress1".into(), KeyValue::Text("a/b@x.com".into()))
                ]),
                segments: vec!["fullname".into()]
            }
        );
        assert!(matches!(
            parse("EntityDefinitions(LogicalName='account')/Attributes").unwrap(),
            Resource::MetadataPath(_)
        ));
        assert!(matches!(
            parse("accounts/Microsoft.Dynamics.CRM.CreateMultiple").unwrap(),
            Resource::BoundAction { .. }
        ));
        assert!(parse("accounts(name=)").is_err());
        assert!(parse("accounts(name='x'").is_err());
    }
}
