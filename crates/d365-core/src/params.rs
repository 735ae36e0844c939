//! Statement parameters: typed values bound to `?` markers (PEP 249's `qmark` style), never
//! spliced into the SQL text.
//!
//! The markers are found with the SQL tokenizer (so a `?` inside a string, a quoted name or a
//! comment is not one), renumbered `$1, $2, …`, and DataFusion replaces each placeholder of the
//! planned statement with its value as a literal of its own type. A parameter holding
//! `x' OR 1=1 --` is therefore a string compared with a column, nothing more; filters on
//! parameters are pushed to the service exactly as filters on literals.

use d365_sql::datafusion::scalar::ScalarValue;
use d365_sql::datafusion::sql::sqlparser::dialect::GenericDialect;
use d365_sql::datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::Error;

/// One parameter value.
#[derive(Clone, PartialEq)]
pub enum Param {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A double.
    Float(f64),
    /// An exact decimal, as text (`-12.3400`): money and decimal columns keep every digit.
    Decimal(String),
    /// Text.
    Text(String),
    /// An instant: microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    /// A calendar date: days since 1970-01-01.
    Date(i32),
    /// A GUID (bound as its lower-case text, as GUID columns read).
    Guid(uuid::Uuid),
}

impl std::fmt::Debug for Param {
    // Parameters may hold personal data or secrets: Debug shows the type only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Param::Null => "Null",
            Param::Bool(_) => "Bool(..)",
            Param::Int(_) => "Int(..)",
            Param::Float(_) => "Float(..)",
            Param::Decimal(_) => "Decimal(..)",
            Param::Text(_) => "Text(..)",
            Param::Timestamp(_) => "Timestamp(..)",
            Param::Date(_) => "Date(..)",
            Param::Guid(_) => "Guid(..)",
        })
    }
}

impl Param {
    /// The value as a DataFusion scalar.
    pub fn to_scalar(&self) -> Result<ScalarValue, Error> {
        Ok(match self {
            Param::Null => ScalarValue::Null,
            Param::Bool(b) => ScalarValue::Boolean(Some(*b)),
            Param::Int(i) => ScalarValue::Int64(Some(*i)),
            Param::Float(x) => ScalarValue::Float64(Some(*x)),
            Param::Decimal(text) => decimal(text)?,
            Param::Text(s) => ScalarValue::Utf8(Some(s.clone())),
            Param::Timestamp(us) => ScalarValue::TimestampMicrosecond(Some(*us), Some("UTC".into())),
            Param::Date(d) => ScalarValue::Date32(Some(*d)),
            Param::Guid(g) => ScalarValue::Utf8(Some(g.to_string())),
        })
    }
}

/// `-123.4500` → Decimal128 with the digits and scale as written (at most 38 digits).
fn decimal(text: &str) -> Result<ScalarValue, Error> {
    let bad = || Error::Parameters(format!("'{text}' is not a decimal number (digits, one optional '.', a sign)"));
    let t = text.trim();
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let digits = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > 38 || frac.len() > 38 {
        return Err(Error::Parameters(format!(
            "decimal parameter {text} has more than 38 digits: Dataverse decimals hold at most 38"
        )));
    }
    let mut v: i128 = if significant.is_empty() { 0 } else { significant.parse().map_err(|_| bad())? };
    if negative {
        v = -v;
    }
    let scale = frac.len() as i8;
    let precision = (significant.len().max(frac.len()).max(1)) as u8;
    Ok(ScalarValue::Decimal128(Some(v), precision.max(scale as u8).max(1), scale))
}

/// `sql` with its `?` markers numbered `$1…$n`, and `n`. Text without markers comes back
/// unchanged. Mixing `?` with `$n` markers is refused.
pub fn number_markers(sql: &str) -> Result<(String, usize), Error> {
    if !sql.contains('?') {
        return Ok((sql.to_string(), count_numbered(sql)));
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| Error::Sql(d365_sql::SqlError::Syntax { message: e.to_string() }))?;
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut numbered = false;
    for t in tokens {
        match t {
            Token::Placeholder(p) if p == "?" => {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            Token::Placeholder(p) if p.starts_with('?') => {
                return Err(Error::Parameters(format!(
                    "parameter marker '{p}': use plain '?' markers, bound in order (paramstyle qmark)"
                )));
            }
            Token::Placeholder(p) if p.starts_with('$') => {
                numbered = true;
                out.push_str(&p);
            }
            other => out.push_str(&other.to_string()),
        }
    }
    if numbered && n > 0 {
        return Err(Error::Parameters("the statement mixes '?' and '$n' parameter markers: use '?' only".into()));
    }
    Ok((out, n))
}

/// The highest `$n` marker in `sql` (0 when there is none).
fn count_numbered(sql: &str) -> usize {
    if !sql.contains('$') {
        return 0;
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return 0;
    };
    tokens
        .iter()
        .filter_map(|t| match t {
            Token::Placeholder(p) => p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// `sql` ready to plan with `params` bound: markers numbered and the count checked.
pub fn bind(sql: &str, params: &[Param]) -> Result<(String, Vec<ScalarValue>), Error> {
    let (text, markers) = number_markers(sql)?;
    if markers != params.len() {
        return Err(Error::Parameters(format!(
            "the statement has {markers} parameter marker{} (?) but {} parameter{} given",
            if markers == 1 { "" } else { "s" },
            params.len(),
            if params.len() == 1 { " was" } else { "s were" }
        )));
    }
    let values = params.iter().map(Param::to_scalar).collect::<Result<Vec<_>, _>>()?;
    Ok((text, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_numbered_outside_strings_names_and_comments() {
        let (t, n) = number_markers("SELECT '?', \"a?\" FROM t -- why?\nWHERE x = ? AND y IN (?, ?) /* ? */").unwrap();
        assert_eq!(n, 3);
        assert!(t.contains("x = $1 AND y IN ($2, $3)"), "{t}");
        assert!(t.contains("'?'") && t.contains("\"a?\"") && t.contains("-- why?") && t.contains("/* ? */"), "{t}");
        assert_eq!(number_markers("SELECT 1").unwrap(), ("SELECT 1".to_string(), 0));
        assert_eq!(number_markers("SELECT $2, $1").unwrap().1, 2);
        assert!(number_markers("SELECT ?, $1").is_err());
        assert!(number_markers("SELECT ?1").is_err());
    }

    #[test]
    fn counts_must_match() {
        let e = bind("SELECT ? + ?", &[Param::Int(1)]).unwrap_err();
        assert_eq!(e.to_string(), "the statement has 2 parameter markers (?) but 1 parameter was given");
        let (_, v) = bind("SELECT ?", &[Param::Text("x' OR 1=1 --".into())]).unwrap();
        assert_eq!(v, vec![ScalarValue::Utf8(Some("x' OR 1=1 --".into()))]);
    }

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(decimal("-12.3400").unwrap(), ScalarValue::Decimal128(Some(-123400), 6, 4));
        assert_eq!(decimal("0.001").unwrap(), ScalarValue::Decimal128(Some(1), 3, 3));
        assert_eq!(decimal("1000").unwrap(), ScalarValue::Decimal128(Some(1000), 4, 0));
        assert_eq!(decimal("0").unwrap(), ScalarValue::Decimal128(Some(0), 1, 0));
        let big = "12345678901234567890123456789012345678";
        assert_eq!(decimal(big).unwrap(), ScalarValue::Decimal128(Some(big.parse().unwrap()), 38, 0));
        assert!(decimal(&format!("{big}9")).is_err());
        for bad in ["", ".", "1e5", "1.2.3", "abc", "--1"] {
            assert!(decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_values() {
        assert_eq!(format!("{:?}", Param::Text("secret".into())), "Text(..)");
    }
}
