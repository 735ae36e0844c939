//! Turning SQLite rows into Web API JSON: which SQL columns a `$select` needs, and how each
//! row is written (`@odata.etag`, values, and the annotations the client asked for:
//! formatted values, lookup logical names, associated navigation properties).

use super::error::{DvError, DvResult};
use crate::schema::{AttrKind, Column, Schema, Table};
use crate::store::codec::{formatted, write_json, write_json_str};
use crate::store::ddl::q;
use rusqlite::types::Value as Sql;

/// Which instance annotations a response carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Annotations {
    /// `OData.Community.Display.V1.FormattedValue`.
    pub formatted: bool,
    /// `Microsoft.Dynamics.CRM.lookuplogicalname`.
    pub lookup_logical_name: bool,
    /// `Microsoft.Dynamics.CRM.associatednavigationproperty`.
    pub associated_nav: bool,
}

impl Annotations {
    /// The annotations a request's `Prefer` asks for.
    pub fn from_prefer(p: &super::request::Prefer) -> Self {
        Self {
            formatted: p.wants(FORMATTED),
            lookup_logical_name: p.wants("Microsoft.Dynamics.CRM.lookuplogicalname"),
            associated_nav: p.wants("Microsoft.Dynamics.CRM.associatednavigationproperty"),
        }
    }
}

/// The columns one response shows, and how to read them.
pub struct Projection<'a> {
    /// The table.
    pub table: &'a Table,
    /// Columns in output order.
    pub columns: Vec<&'a Column>,
    /// Annotations to emit.
    pub ann: Annotations,
    /// Whether `$select` was given (drives the context URL).
    pub explicit: bool,
    /// How many of `columns` the client selected; the rest (primary key, transaction
    /// currency) are returned anyway but do not appear in the context URL.
    pub selected: usize,
    /// The JSON property names of `columns`, computed once per response.
    props: Vec<String>,
}

const FORMATTED: &str = "OData.Community.Display.V1.FormattedValue";

impl<'a> Projection<'a> {
    /// Resolves `$select` (or every column when absent). Lookups are selected by their
    /// `_x_value` property; the primary key is always returned; money columns bring the
    /// transaction currency along.
    pub fn new(table: &'a Table, select: Option<&str>, ann: Annotations) -> DvResult<Self> {
        let Some(select) = select.map(str::trim).filter(|s| !s.is_empty()) else {
            let columns: Vec<&Column> = table.columns.iter().collect();
            let props = columns.iter().map(|c| c.property_name()).collect();
            return Ok(Self { table, selected: columns.len(), columns, ann, explicit: false, props });
        };
        let mut columns: Vec<&Column> = Vec::new();
        for item in select.split(',').map(str::trim) {
            if item == "*" {
                columns = table.columns.iter().collect();
                continue;
            }
            let c =
                table.column_by_property(item).ok_or_else(|| DvError::unknown_property(item, &table.logical_name))?;
            if !columns.iter().any(|x| x.logical_name == c.logical_name) {
                columns.push(c);
            }
        }
        let selected = columns.len();
        let pk = table.primary_id_column();
        if !columns.iter().any(|c| c.is_primary_id) {
            columns.push(pk);
        }
        if columns.iter().any(|c| c.kind == AttrKind::Money)
            && let Some(cur) = table.column("transactioncurrencyid")
            && !columns.iter().any(|c| c.logical_name == "transactioncurrencyid")
        {
            columns.push(cur);
        }
        let props = columns.iter().map(|c| c.property_name()).collect();
        Ok(Self { table, columns, ann, explicit: true, selected, props })
    }

    /// The property list for `@odata.context` (`accounts(name,revenue)`).
    pub fn context_list(&self) -> String {
        self.columns[..self.selected]
            .iter()
            .filter(|c| !c.is_primary_id || self.explicit)
            .map(|c| c.property_name())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SQL expressions to select (for `alias`), in the order [`Projection::write_row`] reads them.
    pub fn sql_columns(&self, schema: &Schema, alias: &str) -> Vec<String> {
        let mut out = vec![format!("{alias}.\"versionnumber\"")];
        for c in &self.columns {
            out.push(format!("{alias}.{}", q(&c.logical_name)));
            if c.kind.is_lookup() {
                if c.is_polymorphic() {
                    out.push(format!("{alias}.{}", q(&format!("{}_type", c.logical_name))));
                }
                if self.ann.formatted {
                    out.push(lookup_name_sql(schema, c, alias));
                }
            }
        }
        out
    }

    /// Writes one row as a JSON object. `row` holds the values of [`Projection::sql_columns`].
    pub fn write_row(&self, out: &mut String, row: &[Sql], currency_symbol: &str, etag: bool) {
        out.push('{');
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !first {
                out.push(',');
            }
            first = false;
        };
        let mut i = 0;
        let version = &row[i];
        i += 1;
        if etag && let Sql::Integer(v) = version {
            sep(out);
            out.push_str(&format!("\"@odata.etag\":\"W/\\\"{v}\\\"\""));
        }
        for (c, prop) in self.columns.iter().zip(&self.props) {
            let v = &row[i];
            i += 1;
            if c.kind.is_lookup() {
                let target: Option<String> = if c.is_polymorphic() {
                    let t = match &row[i] {
                        Sql::Text(t) => Some(t.clone()),
                        _ => None,
                    };
                    i += 1;
                    t
                } else {
                    c.targets.first().cloned()
                };
                let name = if self.ann.formatted {
                    let n = match &row[i] {
                        Sql::Text(t) => Some(t.clone()),
                        _ => None,
                    };
                    i += 1;
                    n
                } else {
                    None
                };
                if !matches!(v, Sql::Null) {
                    if self.ann.associated_nav
                        && let Some(t) = &target
                        && let Some(nav) = c.lookup_navs.iter().find(|n| &n.target == t)
                    {
                        sep(out);
                        out.push_str(&format!("\"{prop}@Microsoft.Dynamics.CRM.associatednavigationproperty\":"));
                        write_json_str(out, &nav.nav);
                    }
                    if self.ann.lookup_logical_name
                        && let Some(t) = &target
                    {
                        sep(out);
                        out.push_str(&format!("\"{prop}@Microsoft.Dynamics.CRM.lookuplogicalname\":"));
                        write_json_str(out, t);
                    }
                    if let Some(n) = name {
                        sep(out);
                        out.push_str(&format!("\"{prop}@{FORMATTED}\":"));
                        write_json_str(out, &n);
                    }
                }
            } else if self.ann.formatted
                && let Some(f) = formatted(c, v, currency_symbol)
            {
                sep(out);
                out.push_str(&format!("\"{prop}@{FORMATTED}\":"));
                write_json_str(out, &f);
            }
            sep(out);
            out.push('"');
            out.push_str(prop);
            out.push_str("\":");
            write_json(out, c, v);
        }
        out.push('}');
    }
}

/// SQL for the primary name of the record a lookup points to.
pub fn lookup_name_sql(schema: &Schema, c: &Column, alias: &str) -> String {
    let one = |target: &str| -> String {
        match schema.table(target) {
            Some(t) => format!(
                "(SELECT x.{} FROM {} x WHERE x.{} = {alias}.{})",
                q(&t.primary_name),
                q(&t.logical_name),
                q(&t.primary_id),
                q(&c.logical_name)
            ),
            None => "NULL".into(),
        }
    };
    if c.is_polymorphic() {
        let arms: String = c.targets.iter().map(|t| format!(" WHEN '{t}' THEN {}", one(t))).collect();
        format!("CASE {alias}.{}{arms} END", q(&format!("{}_type", c.logical_name)))
    } else {
        one(&c.targets[0])
    }
}
