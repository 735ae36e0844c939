//! DML text → [`DmlStatement`]: what to write, to which table, from which rows. Parsed with
//! DataFusion's sqlparser; `UPSERT INTO` (not SQL) is read as `INSERT INTO` with the upsert
//! flag set.

use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr, FromTable, Ident, MergeAction, MergeClauseKind, MergeInsertKind,
    ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableFactor, TableObject, TableWithJoins,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::SqlError;

/// One parsed write statement.
#[derive(Debug, Clone)]
pub(crate) enum DmlStatement {
    /// `INSERT INTO t (cols) VALUES … | SELECT …`, or `UPSERT INTO …`.
    Insert { table: String, columns: Vec<String>, source: Box<Query>, upsert: bool },
    /// `UPDATE t [AS a] SET col = expr, … [WHERE …]`.
    Update { table: String, alias: Option<String>, assignments: Vec<(String, Expr)>, selection: Option<Expr> },
    /// `DELETE FROM t [AS a] [WHERE …]`.
    Delete { table: String, alias: Option<String>, selection: Option<Expr> },
    /// `MERGE INTO t [AS a] USING src ON (…) WHEN …`.
    Merge(Box<Merge>),
}

/// A `MERGE` reduced to what this engine runs: a key match and at most one update and one
/// insert clause.
#[derive(Debug, Clone)]
pub(crate) struct Merge {
    pub table: String,
    pub alias: String,
    /// The source as SQL text for a `FROM` clause (`staging s`, `(SELECT …) AS s`).
    pub source: String,
    /// `ON` equalities: (target column, source expression).
    pub on: Vec<(String, Expr)>,
    /// `WHEN MATCHED THEN UPDATE SET …`.
    pub update: Option<Vec<(String, Expr)>>,
    /// `WHEN NOT MATCHED THEN INSERT (cols) VALUES (…)`.
    pub insert: Option<(Vec<String>, Vec<Expr>)>,
}

/// The statement's leading keyword, past white space and comments.
fn leading_keyword(sql: &str) -> (usize, String) {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'(') {
            if b[i] == b'(' {
                return (i, String::new());
            }
            i += 1;
        }
        if sql[i..].starts_with("--") {
            i = sql[i..].find('\n').map_or(b.len(), |n| i + n + 1);
        } else if sql[i..].starts_with("/*") {
            i = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else {
            break;
        }
    }
    let end = sql[i..].find(|c: char| !c.is_ascii_alphabetic()).map_or(sql.len(), |n| i + n);
    (i, sql[i..end].to_ascii_uppercase())
}

/// Whether `sql` is a write statement (`INSERT`, `UPSERT`, `UPDATE`, `DELETE`, `MERGE`).
pub fn is_dml(sql: &str) -> bool {
    matches!(leading_keyword(sql).1.as_str(), "INSERT" | "UPSERT" | "UPDATE" | "DELETE" | "MERGE")
}

fn unsupported(what: impl Into<String>) -> SqlError {
    SqlError::Unsupported(what.into())
}

fn syntax(e: datafusion::sql::sqlparser::parser::ParserError) -> SqlError {
    SqlError::from(datafusion::error::DataFusionError::SQL(Box::new(e), None))
}

/// The last part of a table name, lower-case (`dbo.Account` → `account`).
pub(crate) fn table_name(name: &ObjectName) -> Result<String, SqlError> {
    let parts: Vec<&Ident> = name
        .0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [t] => Ok(ident(t)),
        [s, t] if s.value.eq_ignore_ascii_case("dbo") => Ok(ident(t)),
        _ => Err(unsupported(format!("writing to '{name}': only tables of schema dbo can be written"))),
    }
}

/// An identifier as DataFusion resolves it: lower-cased unless quoted.
pub(crate) fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_ascii_lowercase() }
}

fn column_name(name: &ObjectName) -> Result<String, SqlError> {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) => Ok(ident(i)),
        _ => Err(unsupported(format!("column name '{name}'"))),
    }
}

fn assignments(list: &[datafusion::sql::sqlparser::ast::Assignment]) -> Result<Vec<(String, Expr)>, SqlError> {
    list.iter()
        .map(|a| match &a.target {
            AssignmentTarget::ColumnName(c) => Ok((column_name(c)?, a.value.clone())),
            AssignmentTarget::Tuple(_) => Err(unsupported("tuple assignments (SET (a, b) = …)")),
        })
        .collect()
}

fn single_table(t: &TableWithJoins) -> Result<(String, Option<String>), SqlError> {
    if !t.joins.is_empty() {
        return Err(unsupported("UPDATE/DELETE with a JOIN: write the condition as a subquery in WHERE"));
    }
    match &t.relation {
        TableFactor::Table { name, alias, .. } => Ok((table_name(name)?, alias.as_ref().map(|a| ident(&a.name)))),
        other => Err(unsupported(format!("writing to '{other}'"))),
    }
}

/// Parses one write statement.
pub(crate) fn parse(sql: &str) -> Result<DmlStatement, SqlError> {
    let (at, keyword) = leading_keyword(sql);
    let upsert = keyword == "UPSERT";
    let text = if upsert { format!("{}INSERT{}", &sql[..at], &sql[at + 6..]) } else { sql.to_string() };
    let mut statements = Parser::parse_sql(&GenericDialect {}, &text).map_err(syntax)?;
    if statements.len() != 1 {
        return Err(SqlError::Plan(format!("expected one statement, found {}", statements.len())));
    }
    match statements.remove(0) {
        Statement::Insert(ins) => {
            let TableObject::TableName(name) = &ins.table else {
                return Err(unsupported("INSERT INTO a table function"));
            };
            if ins.on.is_some() || ins.returning.is_some() || ins.output.is_some() || !ins.assignments.is_empty() {
                return Err(unsupported("INSERT with ON CONFLICT / RETURNING / OUTPUT / SET"));
            }
            let source = ins.source.clone().ok_or_else(|| unsupported("INSERT without VALUES or SELECT"))?;
            let columns = ins.columns.iter().map(column_name).collect::<Result<_, _>>()?;
            Ok(DmlStatement::Insert { table: table_name(name)?, columns, source, upsert })
        }
        Statement::Update(up) => {
            if up.from.is_some() || up.returning.is_some() || up.output.is_some() || up.limit.is_some() {
                return Err(unsupported("UPDATE with FROM / RETURNING / OUTPUT / LIMIT"));
            }
            let (table, alias) = single_table(&up.table)?;
            Ok(DmlStatement::Update {
                table,
                alias,
                assignments: assignments(&up.assignments)?,
                selection: up.selection,
            })
        }
        Statement::Delete(del) => {
            if del.using.is_some() || del.returning.is_some() || del.output.is_some() || del.limit.is_some() {
                return Err(unsupported("DELETE with USING / RETURNING / OUTPUT / LIMIT"));
            }
            let tables = match &del.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let [one] = tables.as_slice() else {
                return Err(unsupported("DELETE from several tables"));
            };
            let (table, alias) = single_table(one)?;
            Ok(DmlStatement::Delete { table, alias, selection: del.selection })
        }
        Statement::Merge(m) => parse_merge(m).map(|m| DmlStatement::Merge(Box::new(m))),
        other => Err(unsupported(format!(
            "statement '{}' (writes are INSERT, UPSERT, UPDATE, DELETE, MERGE)",
            first_word(&other)
        ))),
    }
}

fn first_word(s: &Statement) -> String {
    s.to_string().split_whitespace().next().unwrap_or_default().to_string()
}

fn parse_merge(m: datafusion::sql::sqlparser::ast::Merge) -> Result<Merge, SqlError> {
    let TableFactor::Table { name, alias, .. } = &m.table else {
        return Err(unsupported(format!("MERGE INTO '{}'", m.table)));
    };
    let table = table_name(name)?;
    let alias = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_else(|| table.clone());
    let source_alias = match &m.source {
        TableFactor::Table { name, alias, .. } => {
            alias.as_ref().map(|a| ident(&a.name)).or_else(|| match name.0.last() {
                Some(ObjectNamePart::Identifier(i)) => Some(ident(i)),
                _ => None,
            })
        }
        TableFactor::Derived { alias, .. } => alias.as_ref().map(|a| ident(&a.name)),
        _ => None,
    };
    let mut on = Vec::new();
    split_on(&m.on, &alias, source_alias.as_deref(), &mut on)?;
    let mut update = None;
    let mut insert = None;
    for clause in &m.clauses {
        if clause.predicate.is_some() {
            return Err(unsupported("MERGE clauses with AND conditions"));
        }
        match (&clause.clause_kind, &clause.action) {
            (MergeClauseKind::Matched, MergeAction::Update(u)) if update.is_none() => {
                if u.update_predicate.is_some() || u.delete_predicate.is_some() {
                    return Err(unsupported("MERGE UPDATE … WHERE"));
                }
                update = Some(assignments(&u.assignments)?);
            }
            (MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget, MergeAction::Insert(i))
                if insert.is_none() =>
            {
                let MergeInsertKind::Values(values) = &i.kind else {
                    return Err(unsupported("MERGE INSERT ROW: list the columns and VALUES"));
                };
                let [row] = values.rows.as_slice() else {
                    return Err(SqlError::Plan("MERGE … INSERT takes one VALUES row".into()));
                };
                let columns: Vec<String> = i.columns.iter().map(column_name).collect::<Result<_, _>>()?;
                if columns.len() != row.content.len() {
                    return Err(SqlError::Plan(format!(
                        "MERGE … INSERT names {} columns but gives {} values",
                        columns.len(),
                        row.content.len()
                    )));
                }
                insert = Some((columns, row.content.clone()));
            }
            (kind, action) => {
                return Err(unsupported(format!(
                    "MERGE clause WHEN {kind} THEN {} (supported: one WHEN MATCHED THEN UPDATE SET …, one WHEN NOT MATCHED THEN INSERT … VALUES …)",
                    action.to_string().split_whitespace().next().unwrap_or_default()
                )));
            }
        }
    }
    if update.is_none() && insert.is_none() {
        return Err(SqlError::Plan("MERGE without WHEN clauses".into()));
    }
    Ok(Merge { table, alias, source: m.source.to_string(), on, update, insert })
}

/// Whether `e` names a column of `qualifier` (`t.col`), returning the column.
fn target_column(e: &Expr, qualifier: &str) -> Option<String> {
    match e {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 && ident(&parts[0]) == qualifier => Some(ident(&parts[1])),
        Expr::Nested(inner) => target_column(inner, qualifier),
        _ => None,
    }
}

fn split_on(e: &Expr, target: &str, source: Option<&str>, out: &mut Vec<(String, Expr)>) -> Result<(), SqlError> {
    match e {
        Expr::Nested(inner) => split_on(inner, target, source, out),
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            split_on(left, target, source, out)?;
            split_on(right, target, source, out)
        }
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            let (col, other) = match (target_column(left, target), target_column(right, target)) {
                (Some(c), None) => (c, right),
                (None, Some(c)) => (c, left),
                _ => {
                    return Err(SqlError::Plan(format!(
                        "MERGE ON: '{e}' must compare one column of the target ({target}.<column>) with the source"
                    )));
                }
            };
            if references(other, target) && source != Some(target) {
                return Err(SqlError::Plan(format!("MERGE ON: '{other}' must not use the target table")));
            }
            out.push((col, (**other).clone()));
            Ok(())
        }
        other => Err(unsupported(format!(
            "MERGE ON '{other}': only equalities of target and source columns joined by AND (an alternate key or the primary key)"
        ))),
    }
}

/// Whether `e` mentions a column qualified by `qualifier`.
pub(crate) fn references(e: &Expr, qualifier: &str) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    let q = qualifier.to_ascii_lowercase();
    text.contains(&format!("{q}.")) || text.contains(&format!("\"{q}\"."))
}

/// Whether the source of an INSERT is a plain `VALUES` list.
pub(crate) fn is_values(q: &Query) -> bool {
    matches!(q.body.as_ref(), SetExpr::Values(_))
}

/// A `VALUES` list with every cell as text (`CAST((e) AS VARCHAR)`), or `None` for other
/// queries. DataFusion gives each `VALUES` column one type across rows (and refuses or casts
/// mixed ones, failing the whole statement); as text, each cell is converted to its column's
/// type on its own, so a bad cell fails only its row.
pub(crate) fn values_as_text(q: &Query) -> Option<String> {
    let SetExpr::Values(values) = q.body.as_ref() else { return None };
    if q.order_by.is_some() || q.limit_clause.is_some() || q.with.is_some() {
        return None;
    }
    let rows: Vec<String> = values
        .rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = r.content.iter().map(|e| format!("CAST(({e}) AS VARCHAR)")).collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    Some(format!("VALUES {}", rows.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_writes() {
        assert!(is_dml("  -- note\n insert into account (name) values ('a')"));
        assert!(is_dml("/* x */UPSERT INTO account (accountnumber) VALUES ('1')"));
        assert!(is_dml("update account set name = 'x'"));
        assert!(is_dml("Delete from account"));
        assert!(is_dml(
            "MERGE INTO account USING s ON (account.accountnumber = s.n) WHEN MATCHED THEN UPDATE SET name = s.name"
        ));
        assert!(!is_dml("SELECT 1"));
        assert!(!is_dml("(SELECT 1)"));
        assert!(!is_dml("EXEC GetOAuthAuthorizationUrl"));
    }

    #[test]
    fn parses_each_kind() {
        let DmlStatement::Insert { table, columns, upsert, .. } =
            parse("UPSERT INTO Account (AccountNumber, name) VALUES ('A1', 'x')").unwrap()
        else {
            panic!()
        };
        assert_eq!((table.as_str(), upsert), ("account", true));
        assert_eq!(columns, ["accountnumber", "name"]);
        let DmlStatement::Update { alias, assignments, selection, .. } =
            parse("UPDATE account a SET name = upper(name) WHERE a.revenue > 5").unwrap()
        else {
            panic!()
        };
        assert_eq!(alias.as_deref(), Some("a"));
        assert_eq!(assignments[0].0, "name");
        assert!(selection.is_some());
        let DmlStatement::Merge(m) = parse(
            "MERGE INTO account t USING staging s ON (t.accountnumber = s.num) \
             WHEN MATCHED THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN INSERT (accountnumber, name) VALUES (s.num, s.name)",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(m.on[0].0, "accountnumber");
        assert_eq!(m.on[0].1.to_string(), "s.num");
        assert!(m.update.is_some() && m.insert.is_some());
        assert!(matches!(parse("DELETE FROM contact WHERE 1 = 0").unwrap(), DmlStatement::Delete { .. }));
        assert!(matches!(parse("INSERT INTO a VALUES (").unwrap_err(), SqlError::Syntax { .. }));
    }
}
