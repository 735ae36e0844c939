//! `AttributeMetadata` JSON: the common properties every attribute has, and the properties of
//! its derived type (`StringAttributeMetadata`, `LookupAttributeMetadata`, ...), which the
//! service only shows through a cast to that type.

use super::entity::{introduced_version, label, managed};
use super::object;
use super::types;
use crate::schema::{AttrKind, Column, RequiredLevel, Table};
use serde_json::{Map, Value, json};

/// The derived metadata type of column `c` (`PicklistAttributeMetadata`, ...).
pub fn type_name(c: &Column) -> &'static str {
    c.kind.metadata_type()
}

/// `StringFormat` of a text column: the one it was created with, else from its name (e-mail,
/// phone and URL columns get the formats the standard tables use).
fn string_format(c: &Column) -> &'static str {
    if let Some(f) = c.format {
        return f;
    }
    let n = c.logical_name.as_str();
    if n.starts_with("emailaddress") || n == "internalemailaddress" {
        "Email"
    } else if n.starts_with("telephone") || n.ends_with("phone") {
        "Phone"
    } else if n == "websiteurl" || n.ends_with("url") {
        "Url"
    } else {
        "Text"
    }
}

fn required_level(c: &Column) -> Value {
    let can_change = !matches!(c.required, RequiredLevel::SystemRequired);
    json!({
        "Value": c.required.as_str(),
        "CanBeChanged": can_change,
        "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
    })
}

/// The common `AttributeMetadata` properties of `c` (what a query without a cast returns).
pub fn common_json(t: &Table, c: &Column) -> Map<String, Value> {
    let custom = c.is_custom;
    let seed = c.metadata_id.to_string();
    let read_only = !c.valid_for_create && !c.valid_for_update;
    let source_type = match c.kind {
        AttrKind::Uniqueidentifier
        | AttrKind::Lookup
        | AttrKind::Customer
        | AttrKind::Owner
        | AttrKind::State
        | AttrKind::Status => Value::Null,
        _ => json!(0),
    };
    object! {
        "MetadataId": c.metadata_id,
        "HasChanged": Value::Null,
        "AttributeOf": Value::Null,
        "AttributeType": c.kind.attribute_type(),
        "AttributeTypeName": json!({ "Value": c.kind.attribute_type_name() }),
        "AutoNumberFormat": Value::Null,
        "CanBeSecuredForCreate": !c.is_primary_id && c.valid_for_create,
        "CanBeSecuredForRead": !c.is_primary_id,
        "CanBeSecuredForUpdate": !c.is_primary_id && c.valid_for_update,
        "CanModifyAdditionalSettings": managed(true, false, "canmodifyadditionalsettings"),
        "ColumnNumber": c.column_number,
        "CreatedOn": Value::Null,
        "DeprecatedVersion": Value::Null,
        "Description": label(&c.description, &format!("{seed}:description"), !custom),
        "DisplayName": label(&c.display_name, &format!("{seed}:displayname"), !custom),
        "EntityLogicalName": t.logical_name,
        "ExternalName": Value::Null,
        "InheritsFrom": Value::Null,
        "IntroducedVersion": introduced_version(custom),
        "IsAuditEnabled": managed(!read_only, true, "canmodifyauditsettings"),
        "IsCustomAttribute": custom,
        "IsCustomizable": managed(true, false, "iscustomizable"),
        "IsDataSourceSecret": false,
        "IsFilterable": !c.is_primary_id,
        "IsGlobalFilterEnabled": managed(false, true, "canmodifyglobalfiltersettings"),
        "IsLogical": false,
        "IsManaged": !custom,
        "IsPrimaryId": c.is_primary_id,
        "IsPrimaryName": c.is_primary_name,
        "IsRenameable": managed(true, false, "isrenameable"),
        "IsRequiredForForm": c.is_primary_name,
        "IsRetrievable": true,
        "IsSearchable": true,
        "IsSecured": false,
        "IsSortableEnabled": managed(false, true, "canmodifyissortablesettings"),
        "IsValidForAdvancedFind": managed(true, true, "canmodifysearchsettings"),
        "IsValidForCreate": c.valid_for_create,
        "IsValidForForm": !c.is_primary_id,
        "IsValidForGrid": true,
        "IsValidForRead": true,
        "IsValidForUpdate": c.valid_for_update,
        "IsValidODataAttribute": true,
        "LinkedAttributeId": Value::Null,
        "LogicalName": c.logical_name,
        "ModifiedOn": Value::Null,
        "RequiredLevel": required_level(c),
        "SchemaName": c.schema_name,
        "SourceType": source_type,
    }
}

fn int_bound(v: Option<f64>) -> Value {
    // Integer and BigInt bounds are whole numbers; `as` saturates at the i64 limits.
    v.map_or(Value::Null, |f| json!(f as i64))
}

fn num_bound(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |f| json!(f))
}

/// The properties of `c`'s derived type (beyond the common ones), in the service's order.
pub fn derived_json(t: &Table, c: &Column) -> Map<String, Value> {
    let value = match c.kind {
        AttrKind::String => {
            let format = string_format(c);
            json!({
                "DatabaseLength": c.max_length.map(|n| n * 2),
                "Format": format,
                "FormatName": { "Value": format },
                "FormulaDefinition": null,
                "ImeMode": "Auto",
                "IsLocalizable": false,
                "MaxLength": c.max_length,
                "SourceTypeMask": 0,
                "YomiOf": null,
            })
        }
        AttrKind::Memo => json!({
            "DatabaseLength": c.max_length.map(|n| n * 2),
            "Format": c.format.unwrap_or("TextArea"),
            "FormatName": { "Value": c.format.unwrap_or("TextArea") },
            "ImeMode": "Auto",
            "IsLocalizable": false,
            "MaxLength": c.max_length,
        }),
        AttrKind::Integer => json!({
            "Format": if c.logical_name.ends_with("timezonecode") { "TimeZone" } else { "None" },
            "FormulaDefinition": null,
            "MaxValue": int_bound(c.max_value),
            "MinValue": int_bound(c.min_value),
            "SourceTypeMask": 0,
        }),
        AttrKind::BigInt => json!({
            "MaxValue": int_bound(c.max_value),
            "MinValue": int_bound(c.min_value),
        }),
        AttrKind::Decimal => json!({
            "FormulaDefinition": null,
            "ImeMode": "Auto",
            "MaxValue": num_bound(c.max_value),
            "MinValue": num_bound(c.min_value),
            "Precision": c.precision,
            "SourceTypeMask": 0,
        }),
        AttrKind::Double => json!({
            "ImeMode": "Auto",
            "MaxValue": num_bound(c.max_value),
            "MinValue": num_bound(c.min_value),
            "Precision": c.precision,
        }),
        AttrKind::Money => {
            // `revenue_base` is the base-currency twin of `revenue`.
            let calculation_of = c
                .logical_name
                .strip_suffix("_base")
                .filter(|base| t.column(base).is_some_and(|b| b.kind == AttrKind::Money));
            json!({
                "CalculationOf": calculation_of,
                "FormulaDefinition": null,
                "ImeMode": "Auto",
                "IsBaseCurrency": calculation_of.is_some(),
                "MaxValue": num_bound(c.max_value),
                "MinValue": num_bound(c.min_value),
                "Precision": c.precision,
                "PrecisionSource": 2,
                "SourceTypeMask": 0,
            })
        }
        AttrKind::Boolean => json!({
            "DefaultValue": false,
            "FormulaDefinition": null,
            "SourceTypeMask": 0,
        }),
        AttrKind::DateTime | AttrKind::DateOnly => {
            let date_only = c.kind == AttrKind::DateOnly;
            let behavior = c.datetime_behavior.unwrap_or(if date_only { "DateOnly" } else { "UserLocal" });
            json!({
            "CanChangeDateTimeBehavior": managed(c.is_custom, false, "canchangedatetimebehavior"),
            "DateTimeBehavior": { "Value": behavior },
            "Format": c.format.unwrap_or(if date_only { "DateOnly" } else { "DateAndTime" }),
            "FormulaDefinition": null,
            "ImeMode": "Inactive",
            "MaxSupportedValue": "9999-12-30T23:59:59Z",
            "MinSupportedValue": "1753-01-01T00:00:00Z",
            "SourceTypeMask": 0,
            })
        }
        AttrKind::Uniqueidentifier => json!({}),
        AttrKind::Lookup | AttrKind::Customer | AttrKind::Owner => json!({
            "Format": "None",
            "Targets": c.targets,
        }),
        AttrKind::Picklist | AttrKind::MultiSelectPicklist => json!({
            "DefaultFormValue": -1,
            "ChildPicklistLogicalNames": [],
            "FormulaDefinition": null,
            "ParentPicklistLogicalName": null,
            "SourceTypeMask": 0,
        }),
        AttrKind::State | AttrKind::Status => json!({ "DefaultFormValue": null }),
    };
    match value {
        Value::Object(m) => m,
        _ => unreachable!("json! object literal"),
    }
}

/// The full `AttributeMetadata` of `c` as its derived type (common and type-specific properties).
pub fn full_json(t: &Table, c: &Column) -> Map<String, Value> {
    let mut m = common_json(t, c);
    m.extend(derived_json(t, c));
    m
}

/// Whether `c`'s derived type is `cast` or derives from it (`EnumAttributeMetadata` is abstract and
/// cannot be cast to, which the caller checks).
pub fn is_of_type(c: &Column, cast: &str) -> bool {
    types::meta_type(type_name(c)).is_some_and(|t| types::derives_from(t, cast))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn attr(table: &str, col: &str) -> Map<String, Value> {
        let s = Schema::builtin();
        let t = s.table(table).unwrap();
        full_json(t, t.column(col).unwrap())
    }

    #[test]
    fn string_attribute() {
        let a = attr("account", "name");
        assert_eq!(a["AttributeType"], "String");
        assert_eq!(a["AttributeTypeName"]["Value"], "StringType");
        assert_eq!(a["MaxLength"], 160);
        assert_eq!(a["Format"], "Text");
        assert_eq!(a["FormatName"]["Value"], "Text");
        assert_eq!(a["IsPrimaryName"], true);
        assert_eq!(a["RequiredLevel"]["Value"], "ApplicationRequired");
        assert_eq!(a["RequiredLevel"]["ManagedPropertyLogicalName"], "canmodifyrequirementlevelsettings");
        assert!(a["AttributeOf"].is_null());
        assert_eq!(a["EntityLogicalName"], "account");
        assert_eq!(attr("account", "emailaddress1")["Format"], "Email");
        assert_eq!(attr("account", "websiteurl")["Format"], "Url");
        assert_eq!(attr("account", "telephone1")["Format"], "Phone");
    }

    #[test]
    fn typed_properties() {
        let money = attr("account", "revenue");
        assert_eq!(money["Precision"], 2);
        assert_eq!(money["IsBaseCurrency"], false);
        let base = attr("account", "revenue_base");
        assert_eq!(base["IsBaseCurrency"], true);
        assert_eq!(base["CalculationOf"], "revenue");
        let lookup = attr("contact", "parentcustomerid");
        assert_eq!(lookup["AttributeType"], "Customer");
        assert_eq!(lookup["Targets"], json!(["account", "contact"]));
        assert_eq!(attr("account", "ownerid")["Targets"], json!(["systemuser", "team"]));
        let date = attr("contact", "birthdate");
        assert_eq!(date["Format"], "DateOnly");
        assert_eq!(date["DateTimeBehavior"]["Value"], "DateOnly");
        let created = attr("account", "createdon");
        assert_eq!(created["Format"], "DateAndTime");
        assert_eq!(created["DateTimeBehavior"]["Value"], "UserLocal");
        assert_eq!(created["IsValidForCreate"], false);
        assert_eq!(attr("account", "numberofemployees")["MaxValue"], 2_147_483_647);
        assert_eq!(attr("new_widget", "new_serialnumber")["MinValue"], i64::MIN);
        let id = attr("account", "accountid");
        assert_eq!(id["IsPrimaryId"], true);
        assert_eq!(id["IsValidForUpdate"], false);
        assert_eq!(attr("new_widget", "new_tags")["AttributeType"], "Virtual");
        assert_eq!(attr("new_widget", "new_tags")["IsCustomAttribute"], true);
    }

    #[test]
    fn cast_compatibility() {
        let s = Schema::builtin();
        let t = s.table("account").unwrap();
        assert!(is_of_type(t.column("industrycode").unwrap(), "PicklistAttributeMetadata"));
        assert!(is_of_type(t.column("industrycode").unwrap(), "EnumAttributeMetadata"));
        assert!(!is_of_type(t.column("statecode").unwrap(), "PicklistAttributeMetadata"));
        assert!(is_of_type(t.column("ownerid").unwrap(), "LookupAttributeMetadata"));
    }
}
