//! Many parameter sets for one write statement (PEP 249's `executemany`) as bulk writes, never
//! one request per row (see [`crate::Session::write_many`]): `INSERT/UPSERT INTO t (cols) VALUES
//! (?, …)` becomes `INSERT/UPSERT INTO t (cols) SELECT … FROM <the parameter sets as a local
//! table>` (CreateMultiple / UpsertMultiple chunks), `UPDATE t SET … WHERE <key> = ?` one
//! `MERGE` by that key over the same table, and `DELETE FROM t WHERE <column> = ?` `IN` lists.

use std::sync::Arc;

use d365_sql::datafusion::arrow::array::{ArrayRef, RecordBatch};
use d365_sql::datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use d365_sql::datafusion::scalar::ScalarValue;
use d365_sql::datafusion::sql::sqlparser::dialect::GenericDialect;
use d365_sql::datafusion::sql::sqlparser::keywords::Keyword;
use d365_sql::datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::Error;
use crate::params::Param;

/// An `INSERT/UPSERT … VALUES (?, …)` rewritten to read its values from table `source`:
/// `(statement, markers)`. `None` when the statement has another shape (it then runs once per
/// parameter set).
pub fn values_from_table(sql: &str, source: &str) -> Option<(String, usize)> {
    let (all, sig) = tokens(sql)?;
    let Token::Word(w) = &all[*sig.first()?] else { return None };
    if !(w.keyword == Keyword::INSERT || w.value.eq_ignore_ascii_case("upsert")) {
        return None;
    }
    let values = sig.iter().position(|&i| is_keyword(&all[i], Keyword::VALUES))?;
    let open = *sig.get(values + 1)?;
    if all[open] != Token::LParen {
        return None;
    }
    let mut depth = 0usize;
    let mut close = None;
    for &i in &sig[values + 1..] {
        match all[i] {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close?;
    // Only white space or one ';' may follow the single row.
    if all[close + 1..].iter().any(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon)) {
        return None;
    }
    let (row, n) = markers_as_columns(&all[open + 1..close], source)?;
    let head: String = all[..sig[values]].iter().map(Token::to_string).collect();
    Some((format!("{head}SELECT {row} FROM {source}"), n))
}

/// `tokens` as text with their `?` markers replaced by the parameter table's columns in order
/// (`source.p1`, `source.p2`, …), and the number of markers; `None` for any other kind of marker.
fn markers_as_columns(tokens: &[Token], source: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut n = 0;
    for t in tokens {
        match t {
            Token::Placeholder(p) if p == "?" => {
                n += 1;
                out.push_str(&format!("{source}.p{n}"));
            }
            Token::Placeholder(_) => return None,
            other => out.push_str(&other.to_string()),
        }
    }
    Some((out, n))
}

/// The tokens of `sql` and the positions of its significant (non-white-space) ones, or `None`
/// when it does not tokenize.
fn tokens(sql: &str) -> Option<(Vec<Token>, Vec<usize>)> {
    let all = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let sig = all.iter().enumerate().filter(|(_, t)| !matches!(t, Token::Whitespace(_))).map(|(i, _)| i).collect();
    Some((all, sig))
}

fn is_keyword(t: &Token, k: Keyword) -> bool {
    matches!(t, Token::Word(w) if w.keyword == k && w.quote_style.is_none())
}

/// A (possibly quoted) table or column name. Many Dataverse names are keywords of some SQL
/// dialect (`account`, `contact`), so only the words of the statement shapes read here are
/// refused.
fn is_name(t: &Token) -> bool {
    const STRUCTURE: [Keyword; 10] = [
        Keyword::SET,
        Keyword::WHERE,
        Keyword::FROM,
        Keyword::AND,
        Keyword::OR,
        Keyword::NOT,
        Keyword::IN,
        Keyword::IS,
        Keyword::NULL,
        Keyword::SELECT,
    ];
    matches!(t, Token::Word(w) if w.quote_style.is_some() || !STRUCTURE.contains(&w.keyword))
}

/// `… WHERE <column> = ? [;]` at the end of `tokens` (from index `at`, the `WHERE`): the column.
fn where_key_equals_marker(tokens: &[Token], at: usize) -> Option<String> {
    let rest = &tokens[at + 1..];
    let rest = match rest.last() {
        Some(Token::SemiColon) => &rest[..rest.len() - 1],
        _ => rest,
    };
    match rest {
        [k, Token::Eq, Token::Placeholder(p)] | [Token::Placeholder(p), Token::Eq, k] if p == "?" && is_name(k) => {
            Some(k.to_string())
        }
        _ => None,
    }
}

/// `UPDATE t SET a = ?, b = f(?) WHERE k = ?` rewritten as one `MERGE` over the parameter table
/// `source`: `MERGE INTO t USING source ON (t.k = source.p3) WHEN MATCHED THEN UPDATE SET a =
/// source.p1, b = f(source.p2)`, i.e. one bulk update by key where rows without a record are
/// skipped, as the UPDATE would have found nothing. `(statement, markers)`; `None` for any other
/// shape (the key must be the table's primary or an alternate key: the MERGE checks).
pub fn update_as_merge(sql: &str, source: &str) -> Option<(String, usize)> {
    let (all, sig) = tokens(sql)?;
    let t: Vec<Token> = sig.iter().map(|&i| all[i].clone()).collect();
    if t.len() < 8 || !is_keyword(&t[0], Keyword::UPDATE) || !is_name(&t[1]) || !is_keyword(&t[2], Keyword::SET) {
        return None;
    }
    let mut depth = 0usize;
    let mut at = None;
    for (i, tok) in t.iter().enumerate().skip(3) {
        match tok {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.checked_sub(1)?,
            _ if depth == 0 && is_keyword(tok, Keyword::WHERE) => {
                at = Some(i);
                break;
            }
            _ => {}
        }
    }
    let at = at?;
    let key = where_key_equals_marker(&t, at)?;
    let table = t[1].to_string();
    let (set, n) = markers_as_columns(&all[sig[2] + 1..sig[at]], source)?;
    let markers = n + 1;
    let merge = format!(
        "MERGE INTO {table} USING {source} ON ({table}.{key} = {source}.p{markers}) WHEN MATCHED THEN UPDATE SET {}",
        set.trim()
    );
    Some((merge, markers))
}

/// `DELETE FROM t WHERE k = ?` as the text before an `IN` list: `DELETE FROM t WHERE k IN (`;
/// `None` for any other shape.
pub fn delete_in_prefix(sql: &str) -> Option<String> {
    let (all, sig) = tokens(sql)?;
    let t: Vec<Token> = sig.iter().map(|&i| all[i].clone()).collect();
    if t.len() < 7
        || !is_keyword(&t[0], Keyword::DELETE)
        || !is_keyword(&t[1], Keyword::FROM)
        || !is_name(&t[2])
        || !is_keyword(&t[3], Keyword::WHERE)
    {
        return None;
    }
    let key = where_key_equals_marker(&t, 3)?;
    Some(format!("DELETE FROM {} WHERE {key} IN (", t[2]))
}

/// The type of one parameter column, from its values.
fn column_type(rows: &[Vec<Param>], col: usize) -> Result<DataType, Error> {
    let mut ty: Option<DataType> = None;
    for (r, row) in rows.iter().enumerate() {
        let t = match &row[col] {
            Param::Null => continue,
            Param::Bool(_) => DataType::Boolean,
            Param::Int(_) => DataType::Int64,
            Param::Float(_) => DataType::Float64,
            Param::Decimal(_) => DataType::Decimal128(38, 0),
            Param::Text(_) | Param::Guid(_) => DataType::Utf8,
            Param::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Param::Date(_) => DataType::Date32,
        };
        ty = Some(match (ty, t) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(DataType::Int64), DataType::Float64) | (Some(DataType::Float64), DataType::Int64) => {
                DataType::Float64
            }
            (Some(DataType::Int64 | DataType::Decimal128(..)), DataType::Decimal128(..))
            | (Some(DataType::Decimal128(..)), DataType::Int64) => DataType::Decimal128(38, 0),
            (Some(a), b) => {
                return Err(Error::Parameters(format!(
                    "parameter {} is {a} in earlier rows but {b} in row {}: give each parameter one type in every row",
                    col + 1,
                    r + 1
                )));
            }
        });
    }
    // A column of NULLs only: text, which every Dataverse column type takes as NULL.
    Ok(ty.unwrap_or(DataType::Utf8))
}

/// The parameter sets as one batch: column `p<i>` holds parameter `i` of every row.
pub fn params_batch(rows: &[Vec<Param>], width: usize) -> Result<RecordBatch, Error> {
    if let Some((r, row)) = rows.iter().enumerate().find(|(_, row)| row.len() != width) {
        return Err(Error::Parameters(format!(
            "parameter set {} has {} values but the statement has {width} markers (?)",
            r + 1,
            row.len()
        )));
    }
    if rows.is_empty() {
        return Err(Error::Parameters("executemany needs at least one parameter set".into()));
    }
    let mut fields = Vec::with_capacity(width);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(width);
    for c in 0..width {
        let mut ty = column_type(rows, c)?;
        let values = rows.iter().map(|row| row[c].to_scalar()).collect::<Result<Vec<_>, _>>()?;
        if let DataType::Decimal128(..) = ty {
            // One scale for the column: the largest any value needs (casts are exact).
            let scale = values
                .iter()
                .filter_map(|v| match v {
                    ScalarValue::Decimal128(_, _, s) => Some(*s),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            ty = DataType::Decimal128(38, scale);
        }
        let bad = |e: d365_sql::datafusion::error::DataFusionError| {
            Error::Parameters(format!("parameter {}: {}", c + 1, e.message()))
        };
        let typed = values.iter().map(|v| v.cast_to(&ty)).collect::<Result<Vec<_>, _>>().map_err(bad)?;
        columns.push(ScalarValue::iter_to_array(typed).map_err(bad)?);
        fields.push(Field::new(format!("p{}", c + 1), ty, true));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::Parameters(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_rows_read_from_the_parameter_table() {
        let (sql, n) =
            values_from_table("INSERT INTO contact (firstname, lastname) VALUES (?, upper(?));", "d365_params_1")
                .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            sql,
            "INSERT INTO contact (firstname, lastname) SELECT d365_params_1.p1, upper(d365_params_1.p2) FROM d365_params_1"
        );
        let (sql, _) = values_from_table("upsert into account (accountnumber) values ('?', ?)", "t").unwrap();
        assert!(sql.starts_with("upsert into account (accountnumber) SELECT '?', t.p1 FROM t"), "{sql}");
        assert!(values_from_table("INSERT INTO a (x) VALUES (?), (?)", "t").is_none());
        assert!(values_from_table("UPDATE a SET x = ?", "t").is_none());
        assert!(values_from_table("INSERT INTO a (x) SELECT ? FROM b", "t").is_none());
    }

    #[test]
    fn parameter_columns_take_one_type() {
        let rows = vec![
            vec![Param::Int(1), Param::Text("a".into()), Param::Decimal("1.5".into()), Param::Null],
            vec![Param::Float(2.5), Param::Null, Param::Decimal("-0.25".into()), Param::Null],
        ];
        let b = params_batch(&rows, 4).unwrap();
        assert_eq!(b.schema().field(0).data_type(), &DataType::Float64);
        assert_eq!(b.schema().field(1).data_type(), &DataType::Utf8);
        assert_eq!(b.schema().field(2).data_type(), &DataType::Decimal128(38, 2));
        assert_eq!(b.schema().field(3).data_type(), &DataType::Utf8);
        assert_eq!(b.column(3).null_count(), 2);
        let dec = b.column(2).as_any().downcast_ref::<d365_sql::datafusion::arrow::array::Decimal128Array>().unwrap();
        assert_eq!(dec.value(0), 150);
        assert_eq!(dec.value(1), -25);
        let e = params_batch(&[vec![Param::Int(1)], vec![Param::Text("x".into())]], 1).unwrap_err();
        assert!(e.to_string().contains("parameter 1 is Int64 in earlier rows but Utf8 in row 2"), "{e}");
        assert!(params_batch(&[vec![Param::Int(1)], vec![]], 1).is_err());
    }

    #[test]
    fn updates_by_key_become_one_merge() {
        let (sql, n) =
            update_as_merge("UPDATE contact SET firstname = ?, jobtitle = upper(?) WHERE contactid = ?;", "s").unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            sql,
            "MERGE INTO contact USING s ON (contact.contactid = s.p3) WHEN MATCHED THEN UPDATE SET firstname = s.p1, jobtitle = upper(s.p2)"
        );
        let (sql, _) = update_as_merge("update account set name = 'x' where ? = accountid", "s").unwrap();
        assert!(sql.ends_with("ON (account.accountid = s.p1) WHEN MATCHED THEN UPDATE SET name = 'x'"), "{sql}");
        assert!(update_as_merge("UPDATE contact SET a = ? WHERE b = ? AND c = ?", "s").is_none());
        assert!(update_as_merge("UPDATE contact SET a = ? WHERE b > ?", "s").is_none());
        assert!(update_as_merge("UPDATE contact c SET a = ? WHERE b = ?", "s").is_none());
        assert!(update_as_merge("UPDATE contact SET a = (SELECT 1 WHERE x = ?) WHERE b = ?", "s").is_some());
    }

    #[test]
    fn deletes_by_key_become_in_lists() {
        assert_eq!(
            delete_in_prefix("DELETE FROM contact WHERE contactid = ?").as_deref(),
            Some("DELETE FROM contact WHERE contactid IN (")
        );
        assert!(delete_in_prefix("DELETE FROM contact WHERE a = ? AND b = ?").is_none());
        assert!(delete_in_prefix("DELETE FROM contact").is_none());
    }
}
