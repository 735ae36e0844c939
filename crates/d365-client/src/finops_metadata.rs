//! Finance & Operations metadata: the data entities and their fields from the read-only REST
//! metadata service (`{url}/Metadata/…`), mapped onto the same typed model as Dataverse tables.
//!
//! - The list is **one** request: `Metadata/DataEntities` (name, public entity name, public
//!   collection name, whether the OData service exposes it). `$metadata` would carry the same
//!   facts, but it is tens of megabytes on a real environment.
//! - One entity's fields: `Metadata/PublicEntities('<public entity name>')`, then one
//!   `Metadata/PublicEnumerations('<enum>')` per enum type its fields use (concurrently).
//!
//! The mapping, F&O `DataType` → [`AttributeInfo::attribute_type`]:
//!
//! | F&O | attribute type | SQL (see d365-sql) |
//! |---|---|---|
//! | String | `String` | text |
//! | Int32, Time (seconds after midnight) | `Integer` | int |
//! | Int64 | `BigInt` | bigint |
//! | Real | `Decimal`, 16 digits after the point (F&O stores `numeric(32,16)`) | exact decimal |
//! | Date | `DateTime`, format `DateOnly` (sent as midday UTC) | date |
//! | UtcDateTime | `DateTime` | UTC timestamp |
//! | Enum | `Enum` (members as options: value and name) | text: the member name |
//! | Guid | `Uniqueidentifier` | text |
//! | Container, Record, Void | not readable over OData | — |
//!
//! A table is named by its public collection name (`CustomersV3`), the name in URLs; its key
//! fields (often `dataAreaId` plus a code) become the table's key, and the first key field
//! other than `dataAreaId` its [`EntityInfo::primary_id_attribute`].

use std::collections::BTreeSet;

use futures::future::try_join_all;
use reqwest::Method;
use serde_json::{Map, Value};

use crate::client::{ApiRequest, DataverseClient, decode_json};
use crate::error::ClientError;
use crate::metadata::{AttributeInfo, EntityInfo, EntityMetadata, KeyInfo, OptionInfo};
use crate::query::{encode_query_value, string_literal};

/// The company field of company-scoped entities.
pub const DATA_AREA_ID: &str = "dataAreaId";

/// Digits after the point of F&O `Real` fields.
pub const REAL_SCALE: i32 = 16;

impl DataverseClient {
    async fn finops_metadata_json(&self, path: &str) -> Result<Value, ClientError> {
        let url = self
            .org_url()
            .join(&format!("Metadata/{path}"))
            .map_err(|e| ClientError::InvalidArgument(format!("metadata URL '{path}': {e}")))?;
        let req = ApiRequest::new(Method::GET, url);
        self.execute(&req, |r| decode_json(&req, &r.body)).await
    }

    /// Lists the data entities the OData service exposes (one request, no fields).
    pub async fn fetch_finops_entities(&self) -> Result<Vec<EntityInfo>, ClientError> {
        let body = self.finops_metadata_json("DataEntities").await?;
        let items = values(&body, "Metadata/DataEntities")?;
        let mut out: Vec<EntityInfo> = items
            .iter()
            .filter_map(Value::as_object)
            .filter(|o| o.get("DataServiceEnabled").and_then(Value::as_bool).unwrap_or(true))
            .filter_map(data_entity)
            .collect();
        out.sort_by_key(|a| a.logical_name.to_ascii_lowercase());
        out.dedup_by(|a, b| a.logical_name == b.logical_name);
        Ok(out)
    }

    /// Fetches the fields, keys and enum members of `entity` (as listed by
    /// [`fetch_finops_entities`](Self::fetch_finops_entities)). Uncached.
    pub async fn fetch_finops_entity(&self, entity: &EntityInfo) -> Result<EntityMetadata, ClientError> {
        let path = format!("PublicEntities({})", encode_query_value(&string_literal(&entity.schema_name)));
        let body = self.finops_metadata_json(&path).await?;
        let obj = body.as_object().ok_or_else(|| decode(&path, "expected a JSON object"))?;
        let props: Vec<&Map<String, Value>> = obj
            .get("Properties")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_object).collect())
            .unwrap_or_default();
        let enums: BTreeSet<String> = props
            .iter()
            .filter(|p| text(p, "DataType") == "Enum")
            .map(|p| text(p, "TypeName").to_string())
            .filter(|t| !t.is_empty())
            .collect();
        let fetched = try_join_all(enums.iter().map(|name| async move {
            let path = format!("PublicEnumerations({})", encode_query_value(&string_literal(name)));
            let body = self.finops_metadata_json(&path).await?;
            Ok::<_, ClientError>((name.clone(), members(&body)))
        }))
        .await?;
        let mut attributes: Vec<AttributeInfo> = props
            .iter()
            .map(|p| {
                let mut a = attribute(p);
                if a.attribute_type == "Enum"
                    && let Some((_, m)) = fetched.iter().find(|(n, _)| Some(n) == a.option_set_name.as_ref())
                {
                    a.options = m.clone();
                }
                a
            })
            .collect();
        let key_fields: Vec<String> =
            attributes.iter().filter(|a| a.is_primary_id).map(|a| a.logical_name.clone()).collect();
        let primary = key_fields
            .iter()
            .find(|k| !k.eq_ignore_ascii_case(DATA_AREA_ID))
            .or(key_fields.first())
            .cloned()
            .unwrap_or_default();
        // The table's key column first is not required: columns keep the service's order.
        for a in &mut attributes {
            a.is_primary_id = a.logical_name == primary;
        }
        let mut info = entity.clone();
        info.primary_id_attribute = primary;
        if let Some(set) = obj.get("EntitySetName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            info.entity_set_name = Some(set.to_string());
        }
        let keys = if key_fields.is_empty() {
            Vec::new()
        } else {
            vec![KeyInfo { logical_name: "EntityKey".into(), key_attributes: key_fields }]
        };
        Ok(EntityMetadata { entity: info, attributes, many_to_one: Vec::new(), one_to_many: Vec::new(), keys })
    }
}

fn decode(path: &str, message: &str) -> ClientError {
    ClientError::Decode { method: "GET".into(), path: format!("Metadata/{path}"), message: message.into() }
}

fn values<'v>(body: &'v Value, what: &str) -> Result<&'v [Value], ClientError> {
    body.get("value")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| decode(what, "expected an OData collection with a \"value\" array"))
}

fn text<'m>(o: &'m Map<String, Value>, key: &str) -> &'m str {
    o.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn flag(o: &Map<String, Value>, key: &str, default: bool) -> bool {
    o.get(key).and_then(Value::as_bool).unwrap_or(default)
}

/// An entry of `Metadata/DataEntities` (`None` without a public collection name).
fn data_entity(o: &Map<String, Value>) -> Option<EntityInfo> {
    let set = text(o, "PublicCollectionName");
    if set.is_empty() {
        return None;
    }
    let public = text(o, "PublicEntityName");
    Some(EntityInfo {
        logical_name: set.to_string(),
        schema_name: if public.is_empty() { text(o, "Name").to_string() } else { public.to_string() },
        entity_set_name: Some(set.to_string()),
        primary_id_attribute: String::new(),
        primary_name_attribute: None,
        object_type_code: None,
        change_tracking_enabled: false,
        display_name: o.get("LabelId").and_then(Value::as_str).map(str::to_string),
        display_collection_name: None,
        is_custom: false,
        ownership: text(o, "EntityCategory").to_string(),
        is_activity: false,
        is_intersect: false,
        data_entity: true,
    })
}

/// A field of `Metadata/PublicEntities`.
fn attribute(p: &Map<String, Value>) -> AttributeInfo {
    let name = text(p, "Name").to_string();
    let data_type = text(p, "DataType");
    let type_name = text(p, "TypeName");
    let (attribute_type, readable) = match data_type {
        "String" | "Memo" => ("String", true),
        "Int32" | "Time" => ("Integer", true),
        "Int64" => ("BigInt", true),
        "Real" => ("Decimal", true),
        "Date" | "UtcDateTime" | "DateTime" => ("DateTime", true),
        "Enum" => ("Enum", true),
        "Guid" => ("Uniqueidentifier", true),
        _ => ("Virtual", false),
    };
    let is_key = flag(p, "IsKey", false);
    AttributeInfo {
        schema_name: name.clone(),
        logical_name: name,
        attribute_type: attribute_type.into(),
        attribute_type_name: format!("{data_type}Type"),
        display_name: p.get("LabelId").and_then(Value::as_str).map(str::to_string),
        is_primary_id: is_key,
        is_primary_name: false,
        is_custom: false,
        is_valid_for_read: readable,
        is_valid_for_create: readable && flag(p, "AllowEditOnCreate", true),
        is_valid_for_update: readable && !is_key && flag(p, "AllowEdit", true),
        required_level: if flag(p, "IsMandatory", false) { "ApplicationRequired" } else { "None" }.into(),
        attribute_of: None,
        max_length: None,
        precision: (data_type == "Real").then_some(REAL_SCALE),
        precision_source: None,
        min_value: None,
        max_value: None,
        format: match data_type {
            "Date" => Some("DateOnly".into()),
            "UtcDateTime" | "DateTime" => Some("DateAndTime".into()),
            _ => None,
        },
        datetime_behavior: match data_type {
            "Date" => Some("DateOnly".into()),
            "UtcDateTime" | "DateTime" => Some("TimeZoneIndependent".into()),
            _ => None,
        },
        targets: Vec::new(),
        option_set_name: (data_type == "Enum" && !type_name.is_empty()).then(|| type_name.to_string()),
        options: Vec::new(),
    }
}

/// The members of a `Metadata/PublicEnumerations('…')` answer, as options (value, name).
fn members(body: &Value) -> Vec<OptionInfo> {
    body.get("Members")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_object)
                .map(|m| OptionInfo {
                    value: m.get("Value").and_then(Value::as_i64).and_then(|v| i32::try_from(v).ok()).unwrap_or(0),
                    label: text(m, "Name").to_string(),
                    state: None,
                    default_status: None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_map_to_typed_columns() {
        let p = |v: Value| attribute(v.as_object().unwrap());
        let a = p(json!({"Name":"CreditLimit","DataType":"Real","TypeName":"AmountMST","IsKey":false}));
        assert_eq!((a.attribute_type.as_str(), a.precision), ("Decimal", Some(16)));
        let a = p(json!({"Name":"RequestedShippingDate","DataType":"Date","TypeName":"TransDate"}));
        assert!(a.is_date_only());
        let a = p(json!({"Name":"ModifiedDateTime","DataType":"UtcDateTime"}));
        assert_eq!(a.attribute_type, "DateTime");
        assert!(!a.is_date_only());
        let a = p(json!({"Name":"OnHoldStatus","DataType":"Enum","TypeName":"CustVendorBlocked"}));
        assert_eq!((a.attribute_type.as_str(), a.option_set_name.as_deref()), ("Enum", Some("CustVendorBlocked")));
        let a = p(json!({"Name":"CustomerAccount","DataType":"String","IsKey":true,"AllowEdit":false}));
        assert!(a.is_primary_id && !a.is_valid_for_update && a.is_valid_for_create);
        let a = p(json!({"Name":"Picture","DataType":"Container"}));
        assert!(!a.is_valid_for_read);
    }

    #[test]
    fn entities_are_named_by_their_collection() {
        let e = data_entity(
            json!({"Name":"CustCustomerV3Entity","PublicEntityName":"CustomerV3","PublicCollectionName":"CustomersV3","DataServiceEnabled":true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!((e.logical_name.as_str(), e.schema_name.as_str()), ("CustomersV3", "CustomerV3"));
        assert!(data_entity(json!({"Name":"X","PublicCollectionName":""}).as_object().unwrap()).is_none());
        let m = members(&json!({"Name":"NoYes","Members":[{"Name":"No","Value":0},{"Name":"Yes","Value":1}]}));
        assert_eq!(m.iter().map(|o| (o.value, o.label.as_str())).collect::<Vec<_>>(), vec![(0, "No"), (1, "Yes")]);
    }
}
