//! The typed metadata model (tables, columns, option sets, relationships, keys) and how it is
//! fetched from `EntityDefinitions`.
//!
//! - Listing tables is **one** request: `EntityDefinitions?$select=<the table properties>` — no
//!   attributes, so a large organisation is listed quickly.
//! - One table's columns are fetched on demand: `EntityDefinitions(LogicalName='x')` with
//!   `$expand` of `Attributes` (common properties), the N:1 and 1:N relationships and the keys,
//!   then — concurrently — one typed cast per column type present
//!   (`Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet`, …), because
//!   type-specific properties (`MaxLength`, `Precision`, `Targets`, `Format`,
//!   `DateTimeBehavior`, options) are only served through a cast.
//!
//! [`Metadata`](crate::metadata_cache::Metadata) adds the per-organisation disk cache.

use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::DataverseClient;
use crate::error::ClientError;
use crate::query::string_literal;

/// One table (`EntityMetadata`), as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityInfo {
    /// Logical name (`account`).
    pub logical_name: String,
    /// Schema name (`Account`).
    pub schema_name: String,
    /// Entity set name used in URLs (`accounts`); `None` for tables the Web API cannot query.
    pub entity_set_name: Option<String>,
    /// Primary key column (`accountid`).
    pub primary_id_attribute: String,
    /// Primary name column (`name`), if any.
    pub primary_name_attribute: Option<String>,
    /// Object type code (account 1, contact 2, …).
    pub object_type_code: Option<i32>,
    /// Whether change tracking is enabled.
    pub change_tracking_enabled: bool,
    /// Display name in the user's language.
    pub display_name: Option<String>,
    /// Plural display name.
    pub display_collection_name: Option<String>,
    /// Whether the table is custom.
    pub is_custom: bool,
    /// Ownership (`UserOwned`, `OrganizationOwned`, …).
    pub ownership: String,
    /// Whether it is an activity table.
    pub is_activity: bool,
    /// Whether it is an N:N intersect table.
    pub is_intersect: bool,
    /// Whether it is a Finance & Operations data entity (served at `/data`, F&O dialect).
    #[serde(default)]
    pub data_entity: bool,
}

/// A choice option (also the two options of a yes/no column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionInfo {
    /// Stored value.
    pub value: i32,
    /// Label in the user's language.
    pub label: String,
    /// For status options: the state (statecode) this status belongs to.
    pub state: Option<i32>,
    /// For state options: the default status.
    pub default_status: Option<i32>,
}

/// One column (`AttributeMetadata` plus the properties of its derived type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeInfo {
    /// Logical name (`revenue`).
    pub logical_name: String,
    /// Schema name (`Revenue`).
    pub schema_name: String,
    /// `AttributeType` (`String`, `Money`, `Lookup`, `Virtual`, …).
    pub attribute_type: String,
    /// `AttributeTypeName.Value` (`StringType`, `MultiSelectPicklistType`, …): finer than
    /// `attribute_type` (multi-select choices, images and files are `Virtual`).
    pub attribute_type_name: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Whether it is the primary key.
    pub is_primary_id: bool,
    /// Whether it is the primary name.
    pub is_primary_name: bool,
    /// Whether it is a custom column.
    pub is_custom: bool,
    /// Whether it can be read (selected).
    pub is_valid_for_read: bool,
    /// Whether it can be set on create.
    pub is_valid_for_create: bool,
    /// Whether it can be set on update.
    pub is_valid_for_update: bool,
    /// `RequiredLevel.Value`: `None`, `SystemRequired`, `ApplicationRequired`, `Recommended`.
    pub required_level: String,
    /// The column this helper column belongs to (`owneridname` → `ownerid`).
    pub attribute_of: Option<String>,
    /// String/Memo maximum length.
    pub max_length: Option<i64>,
    /// Decimal/Double/Money precision (digits after the decimal point).
    pub precision: Option<i32>,
    /// Money: where the precision comes from (0 = `Precision`, 1 = organisation pricing
    /// precision, 2 = currency precision).
    pub precision_source: Option<i32>,
    /// Numeric minimum.
    pub min_value: Option<f64>,
    /// Numeric maximum.
    pub max_value: Option<f64>,
    /// `Format` (String: `Email`, `Url`, …; DateTime: `DateOnly` / `DateAndTime`).
    pub format: Option<String>,
    /// DateTime behaviour: `UserLocal`, `DateOnly`, `TimeZoneIndependent`.
    pub datetime_behavior: Option<String>,
    /// Lookup targets (`["account","contact"]` for a customer column).
    pub targets: Vec<String>,
    /// Option set name, for choice columns.
    pub option_set_name: Option<String>,
    /// Options of Picklist / MultiSelect / State / Status / Boolean columns (Boolean: false then
    /// true).
    pub options: Vec<OptionInfo>,
}

impl AttributeInfo {
    /// Whether the column is a lookup (Lookup, Customer or Owner): read as `_<name>_value`.
    pub fn is_lookup(&self) -> bool {
        matches!(self.attribute_type.as_str(), "Lookup" | "Customer" | "Owner")
    }

    /// Whether the column is a multi-select choice.
    pub fn is_multi_select(&self) -> bool {
        self.attribute_type_name == "MultiSelectPicklistType"
    }

    /// Whether the column has option labels (choice, multi-select, state, status, yes/no).
    pub fn has_options(&self) -> bool {
        matches!(self.attribute_type.as_str(), "Picklist" | "State" | "Status" | "Boolean") || self.is_multi_select()
    }

    /// Whether a DateTime column holds a date only (no time of day).
    pub fn is_date_only(&self) -> bool {
        self.attribute_type == "DateTime"
            && (self.format.as_deref() == Some("DateOnly") || self.datetime_behavior.as_deref() == Some("DateOnly"))
    }

    /// The property name to use in `$select` and in rows: `_x_value` for lookups.
    pub fn select_name(&self) -> String {
        if self.is_lookup() { format!("_{}_value", self.logical_name) } else { self.logical_name.clone() }
    }

    /// The label of option `value`.
    pub fn option_label(&self, value: i32) -> Option<&str> {
        self.options.iter().find(|o| o.value == value).map(|o| o.label.as_str())
    }
}

/// A one-to-many relationship (seen from either side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationshipInfo {
    /// Schema name (`contact_customer_accounts`).
    pub schema_name: String,
    /// The "one" side table (`account`).
    pub referenced_entity: String,
    /// Its key column (`accountid`).
    pub referenced_attribute: String,
    /// The "many" side table (`contact`).
    pub referencing_entity: String,
    /// The lookup column on the many side (`parentcustomerid`).
    pub referencing_attribute: String,
    /// Collection navigation property on the one side (`contact_customer_accounts`).
    pub referenced_navigation_property: Option<String>,
    /// Single-valued navigation property on the many side, used in `@odata.bind` and
    /// `$expand` (`parentcustomerid_account`).
    pub referencing_navigation_property: Option<String>,
}

/// An alternate key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Key logical name.
    pub logical_name: String,
    /// Its columns.
    pub key_attributes: Vec<String>,
}

/// Everything about one table: the table, its columns, relationships and keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityMetadata {
    /// The table.
    pub entity: EntityInfo,
    /// Its columns.
    pub attributes: Vec<AttributeInfo>,
    /// Relationships where this table holds the lookup (N:1).
    pub many_to_one: Vec<RelationshipInfo>,
    /// Relationships where other tables point to this one (1:N).
    pub one_to_many: Vec<RelationshipInfo>,
    /// Alternate keys.
    pub keys: Vec<KeyInfo>,
}

impl EntityMetadata {
    /// The column named `name` (logical name, case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&AttributeInfo> {
        self.attributes.iter().find(|a| a.logical_name.eq_ignore_ascii_case(name))
    }

    /// The navigation property to bind lookup column `attribute` to a record of table `target`
    /// (`parentcustomerid` + `account` → `parentcustomerid_account`).
    pub fn lookup_navigation_property(&self, attribute: &str, target: &str) -> Option<&str> {
        self.many_to_one
            .iter()
            .find(|r| r.referencing_attribute.eq_ignore_ascii_case(attribute) && r.referenced_entity == target)
            .and_then(|r| r.referencing_navigation_property.as_deref())
    }
}

const ENTITY_PROPS: &str = "LogicalName,SchemaName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ObjectTypeCode,ChangeTrackingEnabled,DisplayName,DisplayCollectionName,IsCustomEntity,OwnershipType,IsActivity,IsIntersect";
const ATTRIBUTE_PROPS: &str = "LogicalName,SchemaName,AttributeType,AttributeTypeName,DisplayName,IsPrimaryId,IsPrimaryName,IsCustomAttribute,IsValidForRead,IsValidForCreate,IsValidForUpdate,RequiredLevel,AttributeOf";
const RELATIONSHIP_PROPS: &str = "SchemaName,ReferencedEntity,ReferencedAttribute,ReferencingEntity,ReferencingAttribute,ReferencedEntityNavigationPropertyName,ReferencingEntityNavigationPropertyName";

/// The typed casts needed for the column types present: (cast type, query options).
fn casts_for(attrs: &[AttributeInfo]) -> Vec<(&'static str, &'static str)> {
    let has = |t: &str| attrs.iter().any(|a| a.attribute_type == t);
    let mut out = Vec::new();
    let mut add = |present: bool, cast: &'static str, opts: &'static str| {
        if present {
            out.push((cast, opts));
        }
    };
    add(has("String"), "StringAttributeMetadata", "$select=LogicalName,MaxLength,Format");
    add(has("Memo"), "MemoAttributeMetadata", "$select=LogicalName,MaxLength,Format");
    add(has("Integer"), "IntegerAttributeMetadata", "$select=LogicalName,MinValue,MaxValue,Format");
    add(has("Decimal"), "DecimalAttributeMetadata", "$select=LogicalName,Precision,MinValue,MaxValue");
    add(has("Double"), "DoubleAttributeMetadata", "$select=LogicalName,Precision,MinValue,MaxValue");
    add(has("Money"), "MoneyAttributeMetadata", "$select=LogicalName,Precision,PrecisionSource,MinValue,MaxValue");
    add(has("DateTime"), "DateTimeAttributeMetadata", "$select=LogicalName,Format,DateTimeBehavior");
    add(has("Lookup") || has("Customer") || has("Owner"), "LookupAttributeMetadata", "$select=LogicalName,Targets");
    add(has("Picklist"), "PicklistAttributeMetadata", "$select=LogicalName&$expand=OptionSet");
    add(has("State"), "StateAttributeMetadata", "$select=LogicalName&$expand=OptionSet");
    add(has("Status"), "StatusAttributeMetadata", "$select=LogicalName&$expand=OptionSet");
    add(has("Boolean"), "BooleanAttributeMetadata", "$select=LogicalName&$expand=OptionSet");
    add(
        attrs.iter().any(AttributeInfo::is_multi_select),
        "MultiSelectPicklistAttributeMetadata",
        "$select=LogicalName&$expand=OptionSet",
    );
    out
}

impl DataverseClient {
    /// Lists every table (one request, no columns). Uncached: see
    /// [`Metadata`](crate::metadata_cache::Metadata) for the cached form.
    pub async fn fetch_entities(&self) -> Result<Vec<EntityInfo>, ClientError> {
        let body = self.get_json(&format!("EntityDefinitions?$select={ENTITY_PROPS}")).await?;
        let items = value_array(&body, "EntityDefinitions")?;
        let mut out: Vec<EntityInfo> = items.iter().filter_map(|v| v.as_object()).map(entity_from).collect();
        out.sort_by(|a, b| a.logical_name.cmp(&b.logical_name));
        Ok(out)
    }

    /// Each column of a table as (logical name, `AttributeType`), sorted: one request, a cheap
    /// check that its columns are still those an earlier [`fetch_entity_metadata`](Self::fetch_entity_metadata)
    /// found (a scale-out worker typed by its plan's snapshot checks this instead of fetching
    /// the table's metadata again).
    pub async fn fetch_attribute_types(&self, logical_name: &str) -> Result<Vec<(String, String)>, ClientError> {
        let key = crate::query::encode_query_value(&string_literal(&logical_name.to_ascii_lowercase()));
        let path = format!("EntityDefinitions(LogicalName={key})/Attributes?$select=LogicalName,AttributeType");
        let body = self.get_json(&path).await?;
        let mut out: Vec<(String, String)> = value_array(&body, "Attributes")?
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|a| Some((string(a, "LogicalName")?, string(a, "AttributeType").unwrap_or_default())))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Fetches one table's columns (with their typed properties and options), relationships
    /// and keys. Uncached.
    pub async fn fetch_entity_metadata(&self, logical_name: &str) -> Result<EntityMetadata, ClientError> {
        let key = crate::query::encode_query_value(&string_literal(&logical_name.to_ascii_lowercase()));
        let base = format!("EntityDefinitions(LogicalName={key})");
        let body = self
            .get_json(&format!(
                "{base}?$select={ENTITY_PROPS}&$expand=Attributes($select={ATTRIBUTE_PROPS}),ManyToOneRelationships($select={RELATIONSHIP_PROPS}),OneToManyRelationships($select={RELATIONSHIP_PROPS}),Keys($select=LogicalName,KeyAttributes)"
            ))
            .await?;
        let obj = body.as_object().ok_or_else(|| not_object(&base))?;
        let entity = entity_from(obj);
        let mut attributes: Vec<AttributeInfo> = array(obj, "Attributes").into_iter().map(attribute_from).collect();
        let many_to_one = array(obj, "ManyToOneRelationships").into_iter().map(relationship_from).collect();
        let one_to_many = array(obj, "OneToManyRelationships").into_iter().map(relationship_from).collect();
        let keys = array(obj, "Keys")
            .into_iter()
            .map(|k| KeyInfo {
                logical_name: string(k, "LogicalName").unwrap_or_default(),
                key_attributes: k
                    .get("KeyAttributes")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            })
            .collect();

        let requests = casts_for(&attributes).into_iter().map(|(cast, opts)| {
            let path = format!("{base}/Attributes/Microsoft.Dynamics.CRM.{cast}?{opts}");
            async move {
                let body = self.get_json(&path).await?;
                value_array(&body, cast).map(<[Value]>::to_vec)
            }
        });
        for typed in try_join_all(requests).await?.into_iter().flatten() {
            let Some(t) = typed.as_object() else { continue };
            let Some(name) = string(t, "LogicalName") else { continue };
            if let Some(a) = attributes.iter_mut().find(|a| a.logical_name == name) {
                merge_typed(a, t);
            }
        }
        attributes.sort_by(|a, b| a.logical_name.cmp(&b.logical_name));
        Ok(EntityMetadata { entity, attributes, many_to_one, one_to_many, keys })
    }
}

fn not_object(what: &str) -> ClientError {
    ClientError::Decode { method: "GET".into(), path: what.into(), message: "expected a JSON object".into() }
}

fn value_array<'v>(body: &'v Value, what: &str) -> Result<&'v [Value], ClientError> {
    body.get("value").and_then(Value::as_array).map(Vec::as_slice).ok_or_else(|| ClientError::Decode {
        method: "GET".into(),
        path: what.into(),
        message: "expected an OData collection with a \"value\" array".into(),
    })
}

fn array<'m>(obj: &'m Map<String, Value>, key: &str) -> Vec<&'m Map<String, Value>> {
    obj.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_object).collect()).unwrap_or_default()
}

fn string(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_string)
}

fn boolean(obj: &Map<String, Value>, key: &str) -> bool {
    match obj.get(key) {
        Some(Value::Bool(b)) => *b,
        // Managed properties: `{"Value": true, ...}`.
        Some(Value::Object(m)) => m.get("Value").and_then(Value::as_bool).unwrap_or(false),
        _ => false,
    }
}

fn int(obj: &Map<String, Value>, key: &str) -> Option<i64> {
    obj.get(key).and_then(Value::as_i64)
}

fn int32(obj: &Map<String, Value>, key: &str) -> Option<i32> {
    int(obj, key).and_then(|v| i32::try_from(v).ok())
}

/// `{"Value": "x"}` → `x`.
fn inner_value(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(|v| v.get("Value")).and_then(Value::as_str).map(str::to_string)
}

/// The user's label of a `Label` complex value, else the first localized label.
fn label(v: Option<&Value>) -> Option<String> {
    let v = v?;
    let user = v.get("UserLocalizedLabel").and_then(|l| l.get("Label")).and_then(Value::as_str);
    let first = || {
        v.get("LocalizedLabels")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|l| l.get("Label"))
            .and_then(Value::as_str)
    };
    user.or_else(first).filter(|s| !s.is_empty()).map(str::to_string)
}

fn entity_from(o: &Map<String, Value>) -> EntityInfo {
    EntityInfo {
        logical_name: string(o, "LogicalName").unwrap_or_default(),
        schema_name: string(o, "SchemaName").unwrap_or_default(),
        entity_set_name: string(o, "EntitySetName").filter(|s| !s.is_empty()),
        primary_id_attribute: string(o, "PrimaryIdAttribute").unwrap_or_default(),
        primary_name_attribute: string(o, "PrimaryNameAttribute").filter(|s| !s.is_empty()),
        object_type_code: int32(o, "ObjectTypeCode"),
        change_tracking_enabled: boolean(o, "ChangeTrackingEnabled"),
        display_name: label(o.get("DisplayName")),
        display_collection_name: label(o.get("DisplayCollectionName")),
        is_custom: boolean(o, "IsCustomEntity"),
        ownership: string(o, "OwnershipType").unwrap_or_default(),
        is_activity: boolean(o, "IsActivity"),
        is_intersect: boolean(o, "IsIntersect"),
        data_entity: false,
    }
}

fn attribute_from(o: &Map<String, Value>) -> AttributeInfo {
    AttributeInfo {
        logical_name: string(o, "LogicalName").unwrap_or_default(),
        schema_name: string(o, "SchemaName").unwrap_or_default(),
        attribute_type: string(o, "AttributeType").unwrap_or_default(),
        attribute_type_name: inner_value(o, "AttributeTypeName").unwrap_or_default(),
        display_name: label(o.get("DisplayName")),
        is_primary_id: boolean(o, "IsPrimaryId"),
        is_primary_name: boolean(o, "IsPrimaryName"),
        is_custom: boolean(o, "IsCustomAttribute"),
        is_valid_for_read: boolean(o, "IsValidForRead"),
        is_valid_for_create: boolean(o, "IsValidForCreate"),
        is_valid_for_update: boolean(o, "IsValidForUpdate"),
        required_level: inner_value(o, "RequiredLevel").unwrap_or_else(|| "None".into()),
        attribute_of: string(o, "AttributeOf"),
        max_length: None,
        precision: None,
        precision_source: None,
        min_value: None,
        max_value: None,
        format: None,
        datetime_behavior: None,
        targets: Vec::new(),
        option_set_name: None,
        options: Vec::new(),
    }
}

fn relationship_from(o: &Map<String, Value>) -> RelationshipInfo {
    RelationshipInfo {
        schema_name: string(o, "SchemaName").unwrap_or_default(),
        referenced_entity: string(o, "ReferencedEntity").unwrap_or_default(),
        referenced_attribute: string(o, "ReferencedAttribute").unwrap_or_default(),
        referencing_entity: string(o, "ReferencingEntity").unwrap_or_default(),
        referencing_attribute: string(o, "ReferencingAttribute").unwrap_or_default(),
        referenced_navigation_property: string(o, "ReferencedEntityNavigationPropertyName"),
        referencing_navigation_property: string(o, "ReferencingEntityNavigationPropertyName"),
    }
}

fn option_from(o: &Map<String, Value>) -> Option<OptionInfo> {
    Some(OptionInfo {
        value: int32(o, "Value")?,
        label: label(o.get("Label")).unwrap_or_default(),
        state: int32(o, "State"),
        default_status: int32(o, "DefaultStatus"),
    })
}

/// Copies the typed properties of a cast response item into `a`.
fn merge_typed(a: &mut AttributeInfo, t: &Map<String, Value>) {
    if let Some(v) = int(t, "MaxLength") {
        a.max_length = Some(v);
    }
    if let Some(v) = int32(t, "Precision") {
        a.precision = Some(v);
    }
    if let Some(v) = int32(t, "PrecisionSource") {
        a.precision_source = Some(v);
    }
    if let Some(v) = t.get("MinValue").and_then(Value::as_f64) {
        a.min_value = Some(v);
    }
    if let Some(v) = t.get("MaxValue").and_then(Value::as_f64) {
        a.max_value = Some(v);
    }
    if let Some(v) = string(t, "Format") {
        a.format = Some(v);
    }
    if let Some(v) = inner_value(t, "DateTimeBehavior") {
        a.datetime_behavior = Some(v);
    }
    if let Some(targets) = t.get("Targets").and_then(Value::as_array) {
        a.targets = targets.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
    }
    let Some(set) = t.get("OptionSet").and_then(Value::as_object) else { return };
    a.option_set_name = string(set, "Name");
    if let Some(options) = set.get("Options").and_then(Value::as_array) {
        a.options = options.iter().filter_map(Value::as_object).filter_map(option_from).collect();
    } else {
        // Yes/no: FalseOption and TrueOption.
        a.options = ["FalseOption", "TrueOption"]
            .iter()
            .filter_map(|k| set.get(*k).and_then(Value::as_object))
            .filter_map(option_from)
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_managed_booleans() {
        let v = json!({"UserLocalizedLabel": {"Label": "Account"}, "LocalizedLabels": [{"Label": "Konto"}]});
        assert_eq!(label(Some(&v)).as_deref(), Some("Account"));
        let v = json!({"UserLocalizedLabel": null, "LocalizedLabels": [{"Label": "Konto"}]});
        assert_eq!(label(Some(&v)).as_deref(), Some("Konto"));
        let o = json!({"A": {"Value": true}, "B": false}).as_object().unwrap().clone();
        assert!(boolean(&o, "A"));
        assert!(!boolean(&o, "B"));
    }

    #[test]
    fn typed_properties_merge() {
        let base = json!({"LogicalName": "isok", "AttributeType": "Boolean", "AttributeTypeName": {"Value": "BooleanType"},
            "RequiredLevel": {"Value": "SystemRequired"}});
        let mut a = attribute_from(base.as_object().unwrap());
        assert_eq!(a.required_level, "SystemRequired");
        let typed = json!({"LogicalName": "isok", "OptionSet": {"Name": "x",
            "TrueOption": {"Value": 1, "Label": {"UserLocalizedLabel": {"Label": "Yes"}}},
            "FalseOption": {"Value": 0, "Label": {"UserLocalizedLabel": {"Label": "No"}}}}});
        merge_typed(&mut a, typed.as_object().unwrap());
        assert_eq!(a.option_label(1), Some("Yes"));
        assert_eq!(a.options[0].value, 0);
        assert!(a.has_options());
        let casts = casts_for(std::slice::from_ref(&a));
        assert_eq!(casts, vec![("BooleanAttributeMetadata", "$select=LogicalName&$expand=OptionSet")]);
    }
}
