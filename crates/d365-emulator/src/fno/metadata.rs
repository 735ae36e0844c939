//! The read-only metadata service under `{env}/Metadata/`: `DataEntities`, `PublicEntities`,
//! `PublicEntities('Name')`, `PublicEnumerations`, `PublicEnumerations('Name')` and
//! `Labels(Id='…',Language='en-us')`, answered as OData-style JSON (`{"value":[…]}` for
//! collections). Collections take `$filter` with `eq`/`ne` on string properties (joined by
//! `and`/`or`), `$select` and `$top`. Label ids are the emulator's own (`@FnoEmu:…`); the
//! `Labels` endpoint resolves them.

use super::Ctx;
use super::error::{FnoError, FnoResult};
use super::model::{DataType, ENTITIES, ENUMS, Entity, EnumDef};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

fn label_id(text: &str) -> String {
    let compact: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("@FnoEmu:{compact}")
}

fn data_entity(e: &Entity) -> Value {
    json!({
        "Name": e.internal,
        "PublicEntityName": e.name,
        "PublicCollectionName": e.collection,
        "LabelId": label_id(e.label),
        "DataServiceEnabled": true,
        "DataManagementEnabled": true,
        "EntityCategory": e.category,
        "IsReadOnly": false,
    })
}

fn public_entity(e: &Entity) -> Value {
    let props: Vec<Value> = e
        .fields
        .iter()
        .map(|f| {
            let type_name = match f.data_type {
                DataType::Enum(n) => n,
                _ => f.edt,
            };
            json!({
                "Name": f.name,
                "TypeName": type_name,
                "DataType": f.data_type.name(),
                "LabelId": label_id(f.label),
                "IsKey": e.is_key(f.name),
                "IsMandatory": f.mandatory,
                "ConfigurationEnabled": true,
                "AllowEdit": !f.system && !e.is_key(f.name),
                "AllowEditOnCreate": !f.system,
                "IsDimension": false,
            })
        })
        .collect();
    let navs: Vec<Value> = e
        .navigations
        .iter()
        .map(|n| {
            let constraints: Vec<Value> = n
                .constraints
                .iter()
                .map(|(a, b)| {
                    json!({"@odata.type": "#Microsoft.Dynamics.Metadata.ReferentialConstraint", "Property": a, "ReferencedProperty": b})
                })
                .collect();
            json!({
                "Name": n.name,
                "RelatedEntity": n.target,
                "RelatedRelationName": n.relation,
                "Cardinality": if n.many { "Multiple" } else { "Single" },
                "Constraints": constraints,
            })
        })
        .collect();
    json!({
        "Name": e.name,
        "EntitySetName": e.collection,
        "LabelId": label_id(e.label),
        "IsReadOnly": false,
        "ConfigurationEnabled": true,
        "Properties": props,
        "NavigationProperties": navs,
        "PropertyGroups": [],
        "Actions": [],
    })
}

fn enumeration(en: &EnumDef) -> Value {
    let members: Vec<Value> = en
        .members
        .iter()
        .map(|(m, v)| json!({"Name": m, "Value": v, "LabelId": label_id(m), "ConfigurationEnabled": true}))
        .collect();
    json!({"Name": en.name, "LabelId": label_id(en.label), "Members": members})
}

fn all_labels() -> Vec<String> {
    let mut out = Vec::new();
    for e in ENTITIES {
        out.push(e.label.to_string());
        out.extend(e.fields.iter().map(|f| f.label.to_string()));
    }
    for en in ENUMS {
        out.push(en.label.to_string());
        out.extend(en.members.iter().map(|(m, _)| m.to_string()));
    }
    out
}

/// Answers `GET {env}/Metadata/{path}` (path decoded).
pub fn handle(ctx: &Ctx, path: &str) -> FnoResult<Response> {
    let base = format!("{}/Metadata/$metadata", ctx.root);
    let (name, key) = match path.find('(') {
        Some(i) => {
            let inner =
                path[i + 1..].strip_suffix(')').ok_or_else(|| FnoError::bad_request("The key is not closed."))?;
            (&path[..i], Some(inner))
        }
        None => (path.trim_end_matches('/'), None),
    };
    let unquote = |k: &str| -> FnoResult<String> {
        let v = k.split_once('=').map_or(k, |(_, v)| v).trim();
        v.strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .map(|v| v.replace("''", "'"))
            .ok_or_else(|| FnoError::bad_request(format!("The key '{k}' is not a quoted string.")))
    };
    let items: Vec<Value> = match name {
        "DataEntities" => ENTITIES.iter().map(data_entity).collect(),
        "PublicEntities" => ENTITIES.iter().map(public_entity).collect(),
        "PublicEnumerations" => ENUMS.iter().map(enumeration).collect(),
        "Labels" => {
            let k =
                key.ok_or_else(|| FnoError::bad_request("Labels are read by key: Labels(Id='@…',Language='en-us')."))?;
            let id = k
                .split(',')
                .find(|p| p.trim_start().starts_with("Id="))
                .map(unquote)
                .transpose()?
                .ok_or_else(|| FnoError::bad_request("The label key needs Id='…'."))?;
            let text = all_labels().into_iter().find(|l| label_id(l) == id);
            return match text {
                Some(t) => Ok(one(&base, "Labels", json!({"Id": id, "Language": "en-us", "Value": t}))),
                None => Err(FnoError::not_found(format!("The label '{id}' was not found."))),
            };
        }
        _ => return Err(FnoError::no_resource(&format!("{}/Metadata/{path}", ctx.root))),
    };
    if let Some(k) = key {
        let wanted = unquote(k)?;
        let found = items.into_iter().find(|i| i["Name"].as_str() == Some(wanted.as_str()));
        return match found {
            Some(v) => Ok(one(&base, name, project(v, ctx.param("$select"))?)),
            None => Err(FnoError::not_found(format!("No {name} item named '{wanted}' was found."))),
        };
    }
    let mut items = match ctx.param("$filter") {
        Some(f) => {
            let cond = parse_filter(f)?;
            items.into_iter().filter(|i| cond.matches(i)).collect()
        }
        None => items,
    };
    if let Some(t) = ctx.param("$top") {
        let n: usize = t.trim().parse().map_err(|_| FnoError::bad_request(format!("Invalid value '{t}' for $top.")))?;
        items.truncate(n);
    }
    let items = items.into_iter().map(|v| project(v, ctx.param("$select"))).collect::<FnoResult<Vec<_>>>()?;
    let body = json!({"@odata.context": format!("{base}#{name}"), "value": items});
    Ok(super::json_response(StatusCode::OK, body.to_string()))
}

fn one(base: &str, name: &str, v: Value) -> Response {
    let mut m = Map::new();
    m.insert("@odata.context".into(), json!(format!("{base}#{name}/$entity")));
    if let Value::Object(o) = v {
        m.extend(o);
    }
    super::json_response(StatusCode::OK, Value::Object(m).to_string())
}

fn project(v: Value, select: Option<&str>) -> FnoResult<Value> {
    let Some(sel) = select else { return Ok(v) };
    let Value::Object(o) = v else { return Ok(v) };
    let mut out = Map::new();
    for name in sel.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let val =
            o.get(name).ok_or_else(|| FnoError::bad_request(format!("Could not find a property named '{name}'.")))?;
        out.insert(name.to_string(), val.clone());
    }
    Ok(Value::Object(out))
}

/// A metadata filter: comparisons joined by `and`/`or`.
enum Cond {
    Cmp { prop: String, eq: bool, value: String },
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

impl Cond {
    fn matches(&self, item: &Value) -> bool {
        match self {
            Cond::Cmp { prop, eq, value } => {
                let v = match &item[prop.as_str()] {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    other => other.to_string(),
                };
                (v == *value) == *eq
            }
            Cond::And(a, b) => a.matches(item) && b.matches(item),
            Cond::Or(a, b) => a.matches(item) || b.matches(item),
        }
    }
}

fn parse_filter(text: &str) -> FnoResult<Cond> {
    let expr = d365_odata::parse_filter(text, &d365_odata::Aliases::new())
        .map_err(|e| FnoError::bad_request(format!("The query specified in the URI is not valid. {e}")))?;
    cond(&expr)
}

fn cond(e: &d365_odata::Expr) -> FnoResult<Cond> {
    use d365_odata::{CompareOp, Expr, Literal};
    let unsupported = || FnoError::bad_request("The metadata service supports eq and ne comparisons joined by and/or.");
    match e {
        Expr::And(v) | Expr::Or(v) => {
            let mut it = v.iter().map(cond);
            let mut acc = it.next().ok_or_else(unsupported)??;
            for c in it {
                acc = if matches!(e, Expr::And(_)) {
                    Cond::And(Box::new(acc), Box::new(c?))
                } else {
                    Cond::Or(Box::new(acc), Box::new(c?))
                };
            }
            Ok(acc)
        }
        Expr::Compare { op: op @ (CompareOp::Eq | CompareOp::Ne), left, right } => {
            let (Expr::Path(p), Expr::Literal(l)) = (left.as_ref(), right.as_ref()) else { return Err(unsupported()) };
            let prop = p.single().ok_or_else(unsupported)?.to_string();
            let value = match l {
                Literal::String(s) => s.clone(),
                Literal::Bool(b) => b.to_string(),
                Literal::Enum { value, .. } => value.clone(),
                _ => return Err(unsupported()),
            };
            Ok(Cond::Cmp { prop, eq: *op == CompareOp::Eq, value })
        }
        _ => Err(unsupported()),
    }
}
