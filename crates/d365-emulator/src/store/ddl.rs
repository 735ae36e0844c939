//! Creating the SQL tables and indexes from the schema.

use super::codec::sql_type;
use crate::schema::{AttrKind, Column, Schema, Table};
use rusqlite::Connection;

/// Quotes an SQL identifier.
pub fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

pub(super) fn is_seeded(c: &Connection) -> rusqlite::Result<bool> {
    let exists: i64 =
        c.query_row("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='_meta'", [], |r| r.get(0))?;
    if exists == 0 {
        return Ok(false);
    }
    let v: Option<String> =
        c.query_row("SELECT value FROM _meta WHERE key='seeded'", [], |r| r.get(0)).map(Some).or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(v.is_some())
}

pub(super) fn mark_seeded(c: &Connection) -> rusqlite::Result<()> {
    c.execute("INSERT OR REPLACE INTO _meta(key, value) VALUES ('seeded', datetime('now'))", [])?;
    Ok(())
}

pub(super) fn create(c: &Connection, schema: &Schema) -> rusqlite::Result<()> {
    let mut sql = String::from(
        "CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT);\n\
         CREATE TABLE IF NOT EXISTS _deleted (entity TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, deletedon TEXT NOT NULL);\n",
    );
    for t in &schema.tables {
        let mut cols = Vec::new();
        for col in &t.columns {
            let mut def = format!("{} {}", q(&col.logical_name), sql_type(col));
            if col.is_primary_id {
                def.push_str(" NOT NULL PRIMARY KEY");
            }
            cols.push(def);
            if col.kind.is_lookup() && col.is_polymorphic() {
                cols.push(format!("{} TEXT", q(&format!("{}_type", col.logical_name))));
            }
        }
        sql.push_str(&format!("CREATE TABLE IF NOT EXISTS {} ({});\n", q(&t.logical_name), cols.join(", ")));
    }
    c.execute_batch(&sql)
}

pub(super) fn create_indexes(c: &Connection, schema: &Schema) -> rusqlite::Result<()> {
    let mut sql = String::from("CREATE INDEX IF NOT EXISTS ix__deleted ON _deleted(entity, version);\n");
    for t in &schema.tables {
        let tn = &t.logical_name;
        for col in &t.columns {
            sql.push_str(&index_sql(tn, col));
        }
        for key in &t.keys {
            let cols: Vec<String> = key.attributes.iter().map(|a| q(a)).collect();
            sql.push_str(&format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {}({});\n",
                q(&format!("ak_{tn}_{}", key.logical_name)),
                q(tn),
                cols.join(", ")
            ));
        }
    }
    c.execute_batch(&sql)?;
    c.execute_batch("ANALYZE;")
}

/// The `CREATE INDEX` of `col` of table `tn`, if it is indexed (lookups, version numbers,
/// timestamps, state and the primary name), else nothing.
fn index_sql(tn: &str, col: &Column) -> String {
    let indexed = col.kind.is_lookup()
        || matches!(col.logical_name.as_str(), "versionnumber" | "modifiedon" | "createdon" | "statecode")
        || col.is_primary_name;
    if !indexed || col.is_primary_id {
        return String::new();
    }
    let cn = &col.logical_name;
    format!("CREATE INDEX IF NOT EXISTS {} ON {}({});\n", q(&format!("ix_{tn}_{cn}")), q(tn), q(cn))
}

/// The table keeping the definitions of the columns created at runtime, oldest first.
pub(super) fn create_custom_columns(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS _custom_columns (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
         entity TEXT NOT NULL, definition TEXT NOT NULL);",
    )
}

/// Adds `cols` to the SQL table of `t` (existing rows get null), with their indexes, and records
/// `definition`, all in one transaction.
pub(super) fn add_columns(c: &mut Connection, t: &Table, cols: &[Column], definition: &str) -> rusqlite::Result<()> {
    let tn = &t.logical_name;
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut sql = String::new();
    for col in cols {
        sql.push_str(&format!("ALTER TABLE {} ADD COLUMN {} {};\n", q(tn), q(&col.logical_name), sql_type(col)));
        if col.kind.is_lookup() && col.is_polymorphic() {
            sql.push_str(&format!(
                "ALTER TABLE {} ADD COLUMN {} TEXT;\n",
                q(tn),
                q(&format!("{}_type", col.logical_name))
            ));
        }
        sql.push_str(&index_sql(tn, col));
    }
    tx.execute_batch(&sql)?;
    tx.execute("INSERT INTO _custom_columns(entity, definition) VALUES (?1, ?2)", [tn.as_str(), definition])?;
    tx.commit()
}

/// The recorded definitions: `(table, definition)`, oldest first.
pub(super) fn custom_columns(c: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = c.prepare("SELECT entity, definition FROM _custom_columns ORDER BY seq")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

pub(super) fn max_version(c: &Connection, schema: &Schema) -> rusqlite::Result<i64> {
    let mut max: i64 = c.query_row("SELECT coalesce(max(version), 0) FROM _deleted", [], |r| r.get(0))?;
    for t in &schema.tables {
        if t.column("versionnumber").is_some_and(|col| col.kind == AttrKind::BigInt) {
            let v: i64 =
                c.query_row(&format!("SELECT coalesce(max(versionnumber), 0) FROM {}", q(&t.logical_name)), [], |r| {
                    r.get(0)
                })?;
            max = max.max(v);
        }
    }
    Ok(max)
}
