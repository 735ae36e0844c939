//! Reading create/update bodies: column values, `@odata.bind` lookups, type and range
//! validation with Dataverse's error bodies, and the columns the platform computes.

use super::error::{DvError, DvResult};
use crate::schema::{AttrKind, Schema, Table};
use crate::store::codec::{ValueError, from_json};
use axum::http::StatusCode;
use rusqlite::types::Value as Sql;
use serde_json::Value as Json;

/// Create or update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// POST, or the create half of an upsert.
    Create,
    /// PATCH of an existing record.
    Update,
}

/// Column values of a write, plus lookups whose targets must exist.
#[derive(Debug, Default)]
pub struct Changes {
    /// (column, value) in body order; polymorphic lookups add `<col>_type`.
    pub values: Vec<(String, Sql)>,
    /// (target table, id) of every bound lookup.
    pub bound: Vec<(String, String)>,
}

impl Changes {
    /// The value set for `column`, if any.
    pub fn get(&self, column: &str) -> Option<&Sql> {
        self.values.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }

    /// Sets (or replaces) a value.
    pub fn set(&mut self, column: &str, v: Sql) {
        match self.values.iter_mut().find(|(c, _)| c == column) {
            Some(slot) => slot.1 = v,
            None => self.values.push((column.to_string(), v)),
        }
    }
}

fn payload_error(table: &Table, inner: &str) -> DvError {
    DvError::new(
        StatusCode::BAD_REQUEST,
        "0x80048d19",
        format!(
            "Error identified in Payload provided by the user for Entity :'{}', For more information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ----> InnerException : Microsoft.OData.ODataException: {inner}",
            table.set_name
        ),
    )
}

/// Parses an `@odata.bind` reference: `/contacts(<id>)`, `contacts(<id>)` or an absolute URL.
pub fn parse_bind(reference: &str) -> Option<(String, String)> {
    let r = reference.trim();
    let r = match r.find("/api/data/") {
        Some(i) => r[i + "/api/data/".len()..].split_once('/').map(|(_, rest)| rest)?,
        None => r.trim_start_matches('/'),
    };
    let (set, rest) = r.split_once('(')?;
    let id = rest.strip_suffix(')')?;
    let id = uuid::Uuid::parse_str(id.trim_matches(|c| c == '{' || c == '}')).ok()?;
    Some((set.to_string(), id.to_string()))
}

/// Reads a JSON body into the changes it makes to `table`.
pub fn parse_body(schema: &Schema, table: &Table, body: &[u8], op: Op) -> DvResult<Changes> {
    let json: Json = serde_json::from_slice(body).map_err(|e| payload_error(table, &format!("Invalid JSON. {e}")))?;
    let Json::Object(map) = json else {
        return Err(payload_error(table, "A resource (JSON object) was expected in the request body."));
    };
    let mut ch = Changes::default();
    for (key, value) in &map {
        if key == "@odata.type" {
            let expected = format!("Microsoft.Dynamics.CRM.{}", table.logical_name);
            if value.as_str().map(|s| s.trim_start_matches('#')) != Some(expected.as_str()) {
                return Err(payload_error(
                    table,
                    &format!("The type '{value}' is not valid here; expected '{expected}'."),
                ));
            }
            continue;
        }
        if let Some(nav) = key.strip_suffix("@odata.bind") {
            let rel = schema.single_nav(&table.logical_name, nav).ok_or_else(|| {
                payload_error(table, &format!("An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values."))
            })?;
            let col = table.column(&rel.referencing_attribute).expect("relationship column exists");
            let allowed = if op == Op::Create { col.valid_for_create } else { col.valid_for_update };
            if !allowed {
                return Err(payload_error(
                    table,
                    &format!(
                        "The lookup '{nav}' cannot be set on {}.",
                        if op == Op::Create { "create" } else { "update" }
                    ),
                ));
            }
            match value {
                Json::Null => {
                    ch.set(&col.logical_name, Sql::Null);
                    if col.is_polymorphic() {
                        ch.set(&format!("{}_type", col.logical_name), Sql::Null);
                    }
                }
                Json::String(s) => {
                    let (set, id) = parse_bind(s).ok_or_else(|| {
                        DvError::bad_body(format!("The reference '{s}' in '{key}' is not a valid entity reference; use '/<entityset>(<guid>)'."))
                    })?;
                    // `ownerid` binds to systemusers or teams through one navigation property.
                    let referenced = schema.table(&rel.referenced_entity).expect("target table exists");
                    let target = if col.kind == AttrKind::Owner {
                        col.targets
                            .iter()
                            .filter_map(|t| schema.table(t))
                            .find(|t| t.set_name == set)
                            .unwrap_or(referenced)
                    } else {
                        referenced
                    };
                    if target.set_name != set {
                        return Err(DvError::bad_body(format!(
                            "The navigation property '{nav}' binds to '{}' records, not '{set}'.",
                            target.set_name
                        )));
                    }
                    ch.set(&col.logical_name, Sql::Text(id.clone()));
                    if col.is_polymorphic() {
                        ch.set(&format!("{}_type", col.logical_name), Sql::Text(target.logical_name.clone()));
                    }
                    ch.bound.push((target.logical_name.clone(), id));
                }
                _ => {
                    return Err(DvError::bad_body(format!(
                        "'{key}' must be a string reference like '/{}(<guid>)' or null.",
                        schema.table(&rel.referenced_entity).map(|t| t.set_name.as_str()).unwrap_or("")
                    )));
                }
            }
            continue;
        }
        if key.contains('@') {
            continue; // instance annotations in a payload are ignored
        }
        if let Some(rel) = schema.single_nav(&table.logical_name, key) {
            if value.is_null() {
                let col = table.column(&rel.referencing_attribute).expect("relationship column exists");
                ch.set(&col.logical_name, Sql::Null);
                if col.is_polymorphic() {
                    ch.set(&format!("{}_type", col.logical_name), Sql::Null);
                }
                continue;
            }
            return Err(DvError::new(
                StatusCode::NOT_IMPLEMENTED,
                "0x80040216",
                format!(
                    "Deep insert through '{key}' is not implemented by this emulator build yet; create the related record first and bind it with '{key}@odata.bind'."
                ),
            ));
        }
        let col = table.column(key).filter(|c| !c.kind.is_lookup()).ok_or_else(|| {
            payload_error(table, &format!("The property '{key}' does not exist on type 'Microsoft.Dynamics.CRM.{}'. Make sure to only use property names that are defined by the type or mark the type as open type.", table.logical_name))
        })?;
        let allowed = if op == Op::Create { col.valid_for_create } else { col.valid_for_update };
        if !allowed {
            return Err(DvError::new(
                StatusCode::BAD_REQUEST,
                "0x80044331",
                format!(
                    "A validation error occurred.  The '{key}' attribute of the '{}' entity is not valid for {}.",
                    table.logical_name,
                    if op == Op::Create { "create" } else { "update" }
                ),
            ));
        }
        let v = from_json(col, &table.logical_name, value).map_err(|e| match e {
            ValueError::Type(m) => payload_error(table, &m),
            ValueError::Invalid(m) => DvError::validation(m),
        })?;
        if matches!(v, Sql::Null) && col.required == crate::schema::RequiredLevel::SystemRequired {
            return Err(DvError::validation(format!(
                "The '{key}' attribute of the '{}' entity is required and cannot be set to null.",
                table.logical_name
            )));
        }
        ch.set(key, v);
    }
    Ok(ch)
}

/// Fills the columns the platform derives: `fullname`, `<money>_base`, status defaults.
pub fn derive(table: &Table, ch: &mut Changes, existing: Option<&dyn Fn(&str) -> Sql>) {
    let current =
        |ch: &Changes, c: &str| -> Sql { ch.get(c).cloned().or_else(|| existing.map(|f| f(c))).unwrap_or(Sql::Null) };
    if table.column("fullname").is_some()
        && (ch.get("firstname").is_some() || ch.get("lastname").is_some() || existing.is_none())
    {
        let text = |v: Sql| if let Sql::Text(t) = v { t } else { String::new() };
        let full = format!("{} {}", text(current(ch, "firstname")), text(current(ch, "lastname"))).trim().to_string();
        ch.set("fullname", if full.is_empty() { Sql::Null } else { Sql::Text(full) });
    }
    let money: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.kind == AttrKind::Money && !c.logical_name.ends_with("_base"))
        .map(|c| c.logical_name.clone())
        .collect();
    for m in money {
        let base = format!("{m}_base");
        if table.column(&base).is_some()
            && let Some(v) = ch.get(&m).cloned()
        {
            ch.set(&base, v);
        }
    }
    if let (Some(state), None) = (ch.get("statecode").cloned(), ch.get("statuscode"))
        && let (Sql::Integer(s), Some(col)) = (state, table.column("statecode"))
        && let Some(def) = col.options.iter().find(|o| o.value as i64 == s).and_then(|o| o.default_status)
    {
        ch.set("statuscode", Sql::Integer(def as i64));
    }
}

/// Checks that `statuscode` belongs to `statecode`.
pub fn check_status(table: &Table, state: &Sql, status: &Sql) -> DvResult<()> {
    let (Sql::Integer(state), Sql::Integer(status)) = (state, status) else { return Ok(()) };
    let Some(col) = table.column("statuscode") else { return Ok(()) };
    match col.options.iter().find(|o| o.value as i64 == *status) {
        Some(o) if o.state.map(i64::from) == Some(*state) => Ok(()),
        _ => Err(DvError::new(
            StatusCode::BAD_REQUEST,
            "0x8004431a",
            format!(
                "{status} is not a valid status code for state code {}State.{state} on {} with Id.",
                table.schema_name, table.logical_name
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_and_validation() {
        let s = Schema::builtin();
        let c = s.table("contact").unwrap();
        let id = "00000000-0000-0000-0000-000000000001";
        let body = format!(
            r#"{{"firstname":"Ada","lastname":"Lovelace","parentcustomerid_account@odata.bind":"/accounts({id})"}}"#
        );
        let mut ch = parse_body(&s, c, body.as_bytes(), Op::Create).unwrap();
        assert_eq!(ch.get("parentcustomerid"), Some(&Sql::Text(id.into())));
        assert_eq!(ch.get("parentcustomerid_type"), Some(&Sql::Text("account".into())));
        assert_eq!(ch.bound, vec![("account".to_string(), id.to_string())]);
        derive(c, &mut ch, None);
        assert_eq!(ch.get("fullname"), Some(&Sql::Text("Ada Lovelace".into())));
        let e = parse_body(&s, c, br#"{"nosuch":1}"#, Op::Create).unwrap_err();
        assert_eq!(e.code, "0x80048d19");
        assert!(e.message.contains("'nosuch' does not exist"));
        let e = parse_body(
            &s,
            c,
            br#"{"parentcustomerid_account@odata.bind":"/contacts(00000000-0000-0000-0000-000000000001)"}"#,
            Op::Create,
        )
        .unwrap_err();
        assert!(e.message.contains("binds to 'accounts'"));
        assert!(parse_body(&s, c, b"[1]", Op::Create).is_err());
        assert!(parse_body(&s, c, b"{bad json", Op::Create).is_err());
        assert_eq!(
            parse_body(&s, c, br#"{"createdon":"2020-01-01T00:00:00Z"}"#, Op::Create).unwrap_err().code,
            "0x80044331"
        );
        assert_eq!(
            parse_bind("https://x/api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)").unwrap().0,
            "accounts"
        );
    }
}
