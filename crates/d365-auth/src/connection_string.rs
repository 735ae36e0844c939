//! The syntax of connection strings, as CData (and ADO.NET / ODBC) write them:
//!
//! * `Key=Value` pairs separated by `;`, a trailing `;` allowed, empty segments skipped;
//! * keys are case-insensitive and spaces inside them are ignored (`Initiate OAuth` = `InitiateOAuth`);
//! * whitespace around keys and unquoted values is trimmed;
//! * a value may be quoted with `"…"` or `'…'` (the quote doubled inside stands for itself:
//!   `"a""b"` is `a"b`) or wrapped in ODBC braces `{…}` (`}}` stands for `}`); quoted values keep
//!   their spaces and may contain `;` and `=`;
//! * an unquoted value may contain `=` (`Scope=a=b` is `a=b`);
//! * when a key appears twice the last one wins.
//!
//! Which keys exist and what they mean is [`crate::config`]'s business; this module only splits.
//! Errors give the byte position and never quote a value (it may be a secret).

use std::fmt;

use crate::properties;

/// A syntax error in a connection string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection string syntax error at byte {position}: {message}")]
pub struct SyntaxError {
    /// Byte offset in the input where the problem was found.
    pub position: usize,
    /// What is wrong (never contains a value).
    pub message: String,
}

/// One `Key=Value` pair as written.
#[derive(Clone, PartialEq, Eq)]
pub struct Pair {
    /// The key as written (trimmed).
    pub key: String,
    /// The key normalised for comparison: lower case, no whitespace.
    pub normalized: String,
    /// The value, unquoted.
    pub value: String,
    /// Byte offset of the key in the input.
    pub position: usize,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = properties::is_secret_key(&self.normalized);
        f.debug_struct("Pair")
            .field("key", &self.key)
            .field("value", if secret { &"<redacted>" as &dyn fmt::Debug } else { &self.value })
            .finish()
    }
}

/// A parsed connection string: its pairs in order, duplicates kept (lookups take the last).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectionString {
    pairs: Vec<Pair>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.pairs).finish()
    }
}

impl fmt::Display for ConnectionString {
    /// The connection string again, with the values of secret keys replaced by `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.pairs {
            if properties::is_secret_key(&p.normalized) {
                write!(f, "{}=<redacted>;", p.key)?;
            } else {
                write!(f, "{}={};", p.key, quote(&p.value))?;
            }
        }
        Ok(())
    }
}

/// Quotes `value` if it needs it (`;`, quotes, braces or surrounding spaces).
pub fn quote(value: &str) -> String {
    let needs = value.contains([';', '"', '\'', '{', '}'])
        || value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace);
    if needs { format!("\"{}\"", value.replace('"', "\"\"")) } else { value.to_string() }
}

/// Lower-cases `key` and drops whitespace inside it.
pub fn normalize_key(key: &str) -> String {
    key.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

impl ConnectionString {
    /// Splits `input` into pairs.
    pub fn parse(input: &str) -> Result<Self, SyntaxError> {
        let mut pairs = Vec::new();
        let bytes = input.as_bytes();
        let mut i = 0;
        let err = |position: usize, message: &str| SyntaxError { position, message: message.to_string() };
        while i < bytes.len() {
            // skip whitespace and empty segments
            while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b';') {
                i += 1;
            }
            if i >= bytes.len() {
                break;
            }
            let key_start = i;
            while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b';' {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b';' {
                return Err(err(key_start, "expected 'Key=Value' (no '=' after this key)"));
            }
            let key = input[key_start..i].trim();
            if key.is_empty() {
                return Err(err(key_start, "a pair has an empty key"));
            }
            if key.contains(['"', '\'', '{', '}']) {
                return Err(err(key_start, "a key may not contain quotes or braces"));
            }
            i += 1; // '='
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let value;
            match bytes.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let open = i;
                    i += 1;
                    let mut v = String::new();
                    loop {
                        let Some(rel) = input[i..].find(q as char) else {
                            return Err(err(open, &format!("the value of '{key}' has an unterminated quote")));
                        };
                        v.push_str(&input[i..i + rel]);
                        i += rel + 1;
                        if bytes.get(i) == Some(&q) {
                            v.push(q as char);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    value = v;
                    i = expect_end(input, i, key)?;
                }
                Some(b'{') => {
                    let open = i;
                    i += 1;
                    let mut v = String::new();
                    loop {
                        let Some(rel) = input[i..].find('}') else {
                            return Err(err(open, &format!("the value of '{key}' has an unterminated '{{'")));
                        };
                        v.push_str(&input[i..i + rel]);
                        i += rel + 1;
                        if bytes.get(i) == Some(&b'}') {
                            v.push('}');
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    value = v;
                    i = expect_end(input, i, key)?;
                }
                _ => {
                    let start = i;
                    while i < bytes.len() && bytes[i] != b';' {
                        i += 1;
                    }
                    value = input[start..i].trim().to_string();
                }
            }
            pairs.push(Pair { key: key.to_string(), normalized: normalize_key(key), value, position: key_start });
        }
        Ok(Self { pairs })
    }

    /// The pairs in the order written.
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// The last value given for `key` (compared case-insensitively, spaces ignored).
    pub fn get(&self, key: &str) -> Option<&str> {
        let n = normalize_key(key);
        self.pairs.iter().rev().find(|p| p.normalized == n).map(|p| p.value.as_str())
    }

    /// Sets `key` (replacing every earlier occurrence).
    pub fn set(&mut self, key: &str, value: &str) {
        let n = normalize_key(key);
        self.pairs.retain(|p| p.normalized != n);
        self.pairs.push(Pair { key: key.to_string(), normalized: n, value: value.to_string(), position: 0 });
    }
}

/// After a closing quote: only whitespace, then `;` or the end.
fn expect_end(input: &str, mut i: usize, key: &str) -> Result<usize, SyntaxError> {
    let bytes = input.as_bytes();
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    match bytes.get(i) {
        None => Ok(i),
        Some(b';') => Ok(i + 1),
        Some(_) => Err(SyntaxError {
            position: i,
            message: format!("unexpected text after the quoted value of '{key}' (expected ';')"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(s: &str) -> Vec<(String, String)> {
        ConnectionString::parse(s).unwrap().pairs.into_iter().map(|p| (p.key, p.value)).collect()
    }

    #[test]
    fn plain_pairs_trimmed_and_trailing_semicolon() {
        assert_eq!(
            kv(" OrganizationUrl = https://x.crm.dynamics.com/ ; AuthScheme=AzureAD;;"),
            vec![
                ("OrganizationUrl".into(), "https://x.crm.dynamics.com/".into()),
                ("AuthScheme".into(), "AzureAD".into())
            ]
        );
        assert_eq!(kv(""), vec![]);
        assert_eq!(kv(" ; ;"), vec![]);
        assert_eq!(kv("Scope=a=b c"), vec![("Scope".into(), "a=b c".into())]);
        assert_eq!(kv("A="), vec![("A".into(), "".into())]);
    }

    #[test]
    fn quoting_rules() {
        assert_eq!(
            kv(r#"A="x;y""z";B='it''s';C={p;q}}r}"#),
            vec![("A".into(), "x;y\"z".into()), ("B".into(), "it's".into()), ("C".into(), "p;q}r".into())]
        );
        assert_eq!(kv(r#"A=" spaced " ; B = "#), vec![("A".into(), " spaced ".into()), ("B".into(), "".into())]);
        assert_eq!(kv(r#"A='say "hi"'"#), vec![("A".into(), "say \"hi\"".into())]);
    }

    #[test]
    fn last_key_wins_case_insensitively() {
        let c = ConnectionString::parse("azuretenant=a;AzureTenant=b;Azure Tenant = c").unwrap();
        assert_eq!(c.get("AZURETENANT"), Some("c"));
    }

    #[test]
    fn syntax_errors_never_quote_values() {
        let e = ConnectionString::parse("OAuthClientSecret=\"s3cr3t;x").unwrap_err();
        assert_eq!(e.position, 18);
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let e = ConnectionString::parse("A='x' y;").unwrap_err();
        assert_eq!(e.position, 6);
        let e = ConnectionString::parse("novalue;A=1").unwrap_err();
        assert_eq!(e.position, 0);
        assert!(ConnectionString::parse("=1").is_err());
        assert!(ConnectionString::parse("A={x").is_err());
    }

    #[test]
    fn display_redacts_secrets_and_round_trips() {
        let c = ConnectionString::parse("OAuthClientId=abc;OAuthClientSecret=s3cr3t;Scope=\"a;b\"").unwrap();
        let shown = c.to_string();
        assert!(!shown.contains("s3cr3t"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(ConnectionString::parse(&shown).unwrap().get("scope"), Some("a;b"));
    }
}
