//! The table written and its columns: which SQL column sets which Web API property (or binds
//! which lookup), checked before anything is sent; and the conversion of one result row into a
//! [`WriteRow`].

use std::collections::HashMap;
use std::sync::Arc;

use d365_client::{EntityMetadata, KeyValue, RecordKey, RowError, WriteOp, WriteRow};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use super::values::{WriteKind, as_text, cell, display, guid, to_json};
use crate::arrow_schema::{ColumnRole, TableSchema};
use crate::error::SqlError;
use crate::nearest::nearest;

/// Code of the row errors found before sending (a value that does not convert).
pub const CONVERSION_ERROR: &str = "InvalidValue";

/// One lookup target: table, navigation property, entity set.
#[derive(Debug, Clone)]
pub(crate) struct LookupTarget {
    pub table: String,
    pub nav: String,
    pub set: String,
}

/// What one SQL column of the statement writes.
#[derive(Debug, Clone)]
pub(crate) enum Setter {
    /// A plain column.
    Value { column: String, kind: WriteKind },
    /// A lookup: bound by GUID to one of its targets; `type_from`: the statement column of
    /// its `<col>type` (required when there are several targets).
    Lookup { column: String, targets: Vec<LookupTarget>, type_from: Option<usize> },
    /// The primary key: the record's id.
    PrimaryKey,
    /// `<lookup>type`: read by its lookup's setter.
    LookupType,
}

/// The table written.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub schema: Arc<TableSchema>,
    pub meta: Arc<EntityMetadata>,
    /// Logical name → entity set, of every table.
    pub sets: Arc<HashMap<String, String>>,
}

impl Target {
    pub(crate) fn name(&self) -> &str {
        &self.schema.entity.logical_name
    }

    /// Whether the target is a Finance & Operations data entity (natural, composite keys).
    pub(crate) fn finops(&self) -> bool {
        self.schema.dialect == crate::arrow_schema::Dialect::FinOps
    }

    /// The Finance & Operations entity key, in key order (empty for Dataverse tables).
    pub(crate) fn finops_key(&self) -> Vec<String> {
        if !self.finops() {
            return Vec::new();
        }
        self.meta.keys.first().map(|k| k.key_attributes.clone()).unwrap_or_default()
    }

    fn unknown(&self, name: &str) -> SqlError {
        let suggestion = nearest(name, self.schema.columns.iter().map(|c| c.name.as_str()));
        SqlError::UnknownColumn { name: format!("{}.{name}", self.name()), suggestion }
    }

    /// The setters of the statement's columns `names`, for operation `op`. Refuses unknown,
    /// read-only and duplicate columns, and polymorphic lookups without their type.
    pub(crate) fn setters(&self, names: &[String], op: WriteOp) -> Result<Vec<Setter>, SqlError> {
        let mut out = Vec::with_capacity(names.len());
        let mut seen = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            if seen.insert(name.to_ascii_lowercase(), i).is_some() {
                return Err(SqlError::Plan(format!("column '{name}' is set twice")));
            }
            let Some((_, spec)) = self.schema.column(name) else { return Err(self.unknown(name)) };
            let base = spec.property.trim_start_matches('_').trim_end_matches("_value").to_string();
            match spec.role {
                ColumnRole::FormattedValue => {
                    return Err(SqlError::Plan(format!(
                        "column '{name}' is read-only: it is the display name of '{base}' (set '{base}' instead)"
                    )));
                }
                ColumnRole::LookupLogicalName => {
                    out.push(Setter::LookupType);
                    continue;
                }
                ColumnRole::Value => {}
            }
            let Some(attr) = self.meta.attribute(&spec.name) else { return Err(self.unknown(name)) };
            if self.finops()
                && op == WriteOp::Update
                && self.finops_key().iter().any(|k| k.eq_ignore_ascii_case(&attr.logical_name))
            {
                return Err(SqlError::Plan(format!(
                    "the key field '{name}' cannot be changed (Finance & Operations addresses records by their key)"
                )));
            }
            if !self.finops() && attr.logical_name.eq_ignore_ascii_case(&self.schema.primary_key) {
                if op == WriteOp::Update {
                    return Err(SqlError::Plan(format!("the primary key '{name}' cannot be changed")));
                }
                out.push(Setter::PrimaryKey);
                continue;
            }
            let allowed = match op {
                WriteOp::Create => attr.is_valid_for_create,
                WriteOp::Update => attr.is_valid_for_update,
                WriteOp::Upsert => attr.is_valid_for_create || attr.is_valid_for_update,
                WriteOp::Delete => true,
            };
            if !allowed {
                let what = match op {
                    WriteOp::Create => "set when a record is created",
                    _ => "changed",
                };
                return Err(SqlError::Plan(format!("column '{}.{name}' cannot be {what} (read-only)", self.name())));
            }
            if attr.is_lookup() {
                let mut targets = Vec::new();
                for t in &attr.targets {
                    if let (Some(nav), Some(set)) =
                        (self.meta.lookup_navigation_property(&attr.logical_name, t), self.sets.get(t))
                    {
                        targets.push(LookupTarget { table: t.clone(), nav: nav.to_string(), set: set.clone() });
                    }
                }
                if targets.is_empty() {
                    return Err(SqlError::Unsupported(format!(
                        "lookup '{name}': no navigation property to bind it in the metadata"
                    )));
                }
                let type_name = format!("{}type", spec.name);
                let type_from = names.iter().position(|n| n.eq_ignore_ascii_case(&type_name));
                if targets.len() > 1 && type_from.is_none() {
                    let tables: Vec<&str> = targets.iter().map(|t| t.table.as_str()).collect();
                    return Err(SqlError::Plan(format!(
                        "'{name}' can point to several tables ({}): also set '{type_name}' to the table of each row (e.g. {type_name} = '{}')",
                        tables.join(", "),
                        tables[0]
                    )));
                }
                out.push(Setter::Lookup { column: spec.name.clone(), targets, type_from });
                continue;
            }
            let Some(mut kind) = WriteKind::of(&attr.attribute_type, attr.is_multi_select(), attr.is_date_only())
            else {
                return Err(SqlError::Unsupported(format!("writing column '{name}' of type {}", attr.attribute_type)));
            };
            if self.finops() && kind == WriteKind::DateOnly {
                kind = WriteKind::DateMidday;
            }
            out.push(Setter::Value { column: attr.logical_name.clone(), kind });
        }
        for (i, s) in out.iter().enumerate() {
            if matches!(s, Setter::LookupType) {
                let owner = names[i].to_ascii_lowercase();
                let owner = owner.strip_suffix("type").unwrap_or(&owner);
                if !out.iter().any(|o| matches!(o, Setter::Lookup { column, .. } if column == owner)) {
                    return Err(SqlError::Plan(format!(
                        "'{}' only says which table '{owner}' points to: set '{owner}' too",
                        names[i]
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The alternate key (or primary key) whose columns are exactly `columns`, else an error
    /// listing the table's keys.
    pub(crate) fn key_for(&self, columns: &[String]) -> Result<Vec<String>, SqlError> {
        let mut wanted: Vec<String> = columns.iter().map(|c| c.to_ascii_lowercase()).collect();
        wanted.sort();
        wanted.dedup();
        if !self.finops() && wanted == [self.schema.primary_key.to_ascii_lowercase()] {
            return Ok(wanted);
        }
        for k in &self.meta.keys {
            let mut cols: Vec<String> = k.key_attributes.iter().map(|c| c.to_ascii_lowercase()).collect();
            cols.sort();
            if cols == wanted {
                return Ok(k.key_attributes.clone());
            }
        }
        Err(SqlError::Plan(format!("({}) is not a key of '{}': {}", columns.join(", "), self.name(), self.keys_text())))
    }

    /// The first key (alternate, else the primary key) all of whose columns are in `columns`.
    pub(crate) fn key_within(&self, columns: &[String]) -> Result<Vec<String>, SqlError> {
        let has = |c: &str| columns.iter().any(|x| x.eq_ignore_ascii_case(c));
        if !self.finops() && has(&self.schema.primary_key) {
            return Ok(vec![self.schema.primary_key.clone()]);
        }
        for k in &self.meta.keys {
            if !k.key_attributes.is_empty() && k.key_attributes.iter().all(|c| has(c)) {
                return Ok(k.key_attributes.clone());
            }
        }
        Err(SqlError::Plan(format!("an upsert needs the record's key among its columns: {}", self.keys_text())))
    }

    fn keys_text(&self) -> String {
        if self.finops() {
            return format!("the key of '{}' is ({})", self.name(), self.finops_key().join(", "));
        }
        let mut keys = vec![format!("primary key ({})", self.schema.primary_key)];
        for k in &self.meta.keys {
            keys.push(format!("alternate key {} ({})", k.logical_name, k.key_attributes.join(", ")));
        }
        format!("the keys of '{}' are {}", self.name(), keys.join(", "))
    }
}

/// Where the parts of a write row are in a result batch.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub op: WriteOp,
    /// Column holding the record id (UPDATE/DELETE).
    pub id: Option<usize>,
    /// Column holding the etag.
    pub etag: Option<usize>,
    /// Alternate key columns: (column name, batch column).
    pub key: Vec<(String, usize)>,
    /// Statement columns: (name as written, setter), in batch order from `first_value`.
    pub names: Vec<String>,
    pub setters: Vec<Setter>,
    pub first_value: usize,
}

/// One row turned into what is sent, or why it cannot be.
pub(crate) struct Converted {
    pub row: Result<WriteRow, Box<RowError>>,
    /// The row's input values by column (for error reports and dry runs).
    pub input: Map<String, Value>,
}

fn row_error(index: u64, key: Option<RecordKey>, column: &str, message: String) -> Box<RowError> {
    Box::new(RowError {
        index,
        key,
        id: None,
        status: None,
        code: CONVERSION_ERROR.to_string(),
        message,
        column: Some(column.to_string()),
    })
}

impl Layout {
    /// Converts row `r` of `batch` (input row number `index`).
    pub(crate) fn convert(&self, target: &Target, batch: &RecordBatch, r: usize, index: u64) -> Converted {
        let mut input = Map::new();
        let mut cells = Vec::with_capacity(self.setters.len());
        for (i, name) in self.names.iter().enumerate() {
            let v =
                cell(batch.column(self.first_value + i).as_ref(), r).unwrap_or(datafusion::common::ScalarValue::Null);
            input.insert(name.clone(), display(&v));
            cells.push(v);
        }
        let mut key: Option<RecordKey> = None;
        if let Some(c) = self.id {
            let v = cell(batch.column(c).as_ref(), r).ok();
            match v.as_ref().and_then(as_text).and_then(guid) {
                Some(id) => key = Some(RecordKey::Id(id)),
                None => {
                    let pk = target.schema.primary_key.clone();
                    let e = row_error(index, None, &pk, "the record has no id".into());
                    return Converted { row: Err(e), input };
                }
            }
        }
        let etag = self
            .etag
            .and_then(|c| cell(batch.column(c).as_ref(), r).ok())
            .and_then(|v| as_text(&v).map(str::to_string));
        let mut values = Map::new();
        for (i, setter) in self.setters.iter().enumerate() {
            let v = &cells[i];
            let name = &self.names[i];
            let fail = |m: String| Converted { row: Err(row_error(index, key.clone(), name, m)), input: input.clone() };
            match setter {
                Setter::LookupType => {}
                Setter::PrimaryKey => match as_text(v).and_then(guid) {
                    Some(id) => key = Some(RecordKey::Id(id)),
                    None if v.is_null() => {}
                    None => return fail(format!("{} is not a GUID", super::values::display(v))),
                },
                Setter::Value { column, kind } => match to_json(*kind, v) {
                    Ok(j) => {
                        values.insert(column.clone(), j);
                    }
                    Err(m) => return fail(m),
                },
                Setter::Lookup { column, targets, type_from } => {
                    let chosen = match type_from {
                        Some(t) => match as_text(&cells[*t]).map(|s| s.trim().to_ascii_lowercase()) {
                            Some(tt) => match targets.iter().find(|x| x.table == tt) {
                                Some(x) => x,
                                None => {
                                    let names: Vec<&str> = targets.iter().map(|x| x.table.as_str()).collect();
                                    let m = format!(
                                        "'{column}' cannot point to table '{tt}' (it points to {})",
                                        names.join(", ")
                                    );
                                    return Converted {
                                        row: Err(row_error(index, key.clone(), &self.names[*t], m)),
                                        input: input.clone(),
                                    };
                                }
                            },
                            None if v.is_null() || targets.len() == 1 => &targets[0],
                            None => {
                                return fail(format!("'{column}type' is NULL: say which table '{column}' points to"));
                            }
                        },
                        None => &targets[0],
                    };
                    let bind = format!("{}@odata.bind", chosen.nav);
                    if v.is_null() {
                        values.insert(bind, Value::Null);
                    } else {
                        match as_text(v).and_then(guid) {
                            Some(id) => {
                                values.insert(bind, Value::String(format!("/{}({id})", chosen.set)));
                            }
                            None => {
                                return fail(format!(
                                    "{} is not a GUID (a lookup is set by the record's id)",
                                    display(v)
                                ));
                            }
                        }
                    }
                }
            }
        }
        if !self.key.is_empty() {
            let mut parts = Vec::new();
            for (col, c) in &self.key {
                let v = cell(batch.column(*c).as_ref(), r).unwrap_or(datafusion::common::ScalarValue::Null);
                let kv = match key_value(target, col, &v) {
                    Ok(kv) => kv,
                    Err(m) => return Converted { row: Err(row_error(index, None, col, m)), input },
                };
                parts.push((col.clone(), kv));
            }
            if parts.len() == 1 && parts[0].0.eq_ignore_ascii_case(&target.schema.primary_key) {
                if let KeyValue::Guid(g) = parts[0].1 {
                    key = Some(RecordKey::Id(g));
                }
            } else {
                key = Some(RecordKey::Alternate(parts));
            }
        }
        let mut row = WriteRow::new(index, values);
        row.key = key;
        row.etag = etag;
        if self.op == WriteOp::Delete {
            row.values.clear();
        }
        Converted { row: Ok(row), input }
    }
}

/// A key column's value as an OData key literal.
fn key_value(target: &Target, column: &str, v: &datafusion::common::ScalarValue) -> Result<KeyValue, String> {
    if v.is_null() {
        return Err(format!("the key column '{column}' is NULL"));
    }
    let attr = target.meta.attribute(column).ok_or_else(|| format!("unknown key column '{column}'"))?;
    let kind = WriteKind::of(&attr.attribute_type, attr.is_multi_select(), attr.is_date_only());
    if target.finops() {
        // Finance & Operations key literals: text quoted, numbers and instants as written,
        // dates at midday UTC, enums with their type.
        let kind = match kind {
            Some(WriteKind::DateOnly) => WriteKind::DateMidday,
            k => k.unwrap_or(WriteKind::Text),
        };
        return Ok(match (attr.attribute_type.as_str(), to_json(kind, v)?) {
            ("Enum", Value::String(s)) => KeyValue::Raw(format!(
                "Microsoft.Dynamics.DataEntities.{}'{}'",
                attr.option_set_name.as_deref().unwrap_or_default(),
                s.replace('\'', "''")
            )),
            (_, Value::Number(n)) if n.is_i64() => KeyValue::Int(n.as_i64().unwrap_or_default()),
            (_, Value::Number(n)) => KeyValue::Raw(n.to_string()),
            ("DateTime", Value::String(s)) => KeyValue::Raw(s),
            (_, Value::String(s)) => KeyValue::String(s),
            (_, other) => KeyValue::String(other.to_string()),
        });
    }
    let json = to_json(kind.unwrap_or(WriteKind::Text), v)?;
    Ok(match (kind, json) {
        (Some(WriteKind::Guid), Value::String(s)) => KeyValue::Guid(guid(&s).ok_or("not a GUID")?),
        (_, Value::Number(n)) if n.is_i64() => KeyValue::Int(n.as_i64().unwrap_or_default()),
        (_, Value::String(s)) => KeyValue::String(s),
        (_, other) => KeyValue::String(other.to_string()),
    })
}
