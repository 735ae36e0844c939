//! `POST [API]/EntityDefinitions(<key>)/Attributes`: creates a column on an existing table, as
//! learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-column-definitions-using-web-api
//! describes. The body is the column's `AttributeMetadata` with its derived `@odata.type`; the
//! answer is `204 No Content` with `OData-EntityId` naming the new attribute
//! (`EntityDefinitions(LogicalName='contact')/Attributes(<MetadataId>)`).
//!
//! Created here: String, Memo, Integer, BigInt, Decimal, Double, Money (with its `_base` twin),
//! Boolean (with its two labels), DateTime and local Picklist / MultiSelectPicklist columns.
//! Lookups come with a relationship, not through this collection (400); the other attribute
//! types Dataverse has (image, file, ...) and global choices answer 501. The caller needs
//! `prvCreateAttribute` (System Administrator, System Customizer): else 403. Name checks follow
//! the platform's errors: `InvalidNamePrefix` (the schema name needs the default publisher's
//! `new_`, or with `MSCRM.SolutionUniqueName` any publisher prefix), `DuplicateAttributeSchemaName`,
//! `SchemaNameNotStartwithLetter`, `SchemaNameContainsNonAlphaNumericCharacters`,
//! `SchemaNameLengthExceedsLimit`. Read-only and display-only properties of the body
//! (`ImeMode`, `IsAuditEnabled`, `SourceTypeMask`, ...) are accepted and not kept. In a `$batch`,
//! a column is created by a request outside change sets (inside one: 501).

use super::{Key, NAMESPACE, entity_not_found, find_table, segments, split_key, types};
use crate::schema::RequiredLevel;
use crate::schema::custom::{
    AddColumnError, DECIMAL_MAX, DECIMAL_MIN, DateTimeBehavior, MONEY_MAX, MONEY_MIN, NewColumn, NewColumnKind,
    NewOption, PrefixRule, StringFormat,
};
use crate::webapi::Ctx;
use crate::webapi::error::{DvError, DvResult};
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// Attribute types of Dataverse that the emulator does not create.
const NOT_EMULATED: &[&str] = &[
    "ImageAttributeMetadata",
    "FileAttributeMetadata",
    "EntityNameAttributeMetadata",
    "ManagedPropertyAttributeMetadata",
    "UniqueIdentifierAttributeMetadata",
    "StateAttributeMetadata",
    "StatusAttributeMetadata",
];

fn not_emulated(what: &str) -> DvError {
    DvError::new(StatusCode::NOT_IMPLEMENTED, "0x80040216", format!("{what} is not implemented by this emulator."))
}

/// `0x80040203` `InvalidArgument`.
fn invalid(message: impl Into<String>) -> DvError {
    DvError::new(StatusCode::BAD_REQUEST, "0x80040203", message)
}

/// The Dataverse error of `e`.
pub fn error_of(e: AddColumnError) -> DvError {
    let code = match &e {
        AddColumnError::UnknownTable(name) => {
            return entity_not_found(&Key::Named("LogicalName".into(), name.clone()));
        }
        AddColumnError::Store(m) => return DvError::internal(format!("The column could not be stored: {m}")),
        AddColumnError::NotStartWithLetter(_) => "0x80044365",
        AddColumnError::NonAlphanumeric(_) => "0x80044364",
        AddColumnError::TooLong { .. } => "0x80044367",
        AddColumnError::InvalidPrefix(_) => "0x80044366",
        AddColumnError::Duplicate { .. } => "0x80047013",
        AddColumnError::MatchesExisting(_) => "0x80044361",
        AddColumnError::Invalid(_) => "0x80040203",
    };
    DvError::new(StatusCode::BAD_REQUEST, code, e.to_string())
}

/// `POST` on a metadata path: creates a column when `path` is `EntityDefinitions(<key>)/Attributes`.
pub async fn post(ctx: Ctx, path: &str, body: Bytes) -> DvResult<Response> {
    let segs = segments(path);
    let roots = ["EntityDefinitions", "RelationshipDefinitions", "GlobalOptionSetDefinitions"];
    let (root, key) = match segs.first() {
        Some(first) => split_key(first, &roots)?,
        None => return Err(DvError::segment_not_found(path)),
    };
    let key = match (root, key, &segs[1..]) {
        ("EntityDefinitions", Some(key), ["Attributes"]) => key,
        ("EntityDefinitions", None, []) => return Err(not_emulated("Creating a table (POST EntityDefinitions)")),
        ("RelationshipDefinitions", None, []) => return Err(not_emulated("Creating a relationship")),
        ("GlobalOptionSetDefinitions", None, []) => return Err(not_emulated("Creating a global choice")),
        ("EntityDefinitions", Some(_), [nav]) if nav.ends_with("Relationships") || *nav == "Keys" => {
            return Err(not_emulated(&format!("Creating {nav} items")));
        }
        _ => {
            return Err(DvError::method_not_allowed(
                "Metadata can only be read (GET), or a column created (POST to EntityDefinitions(...)/Attributes), through this emulator.",
            ));
        }
    };
    let table = find_table(&ctx.schema, &key)?.logical_name.clone();
    if ctx.pinned.is_some() {
        // The change set's transaction holds the write lock the column's ALTER TABLE needs.
        return Err(not_emulated("Creating a column inside a $batch change set"));
    }
    let column = parse(&body)?;
    ctx.caller.check_customization("prvCreateAttribute")?;
    let rule = if ctx.headers.contains_key("mscrm.solutionuniquename") {
        PrefixRule::AnyPublisher
    } else {
        PrefixRule::DefaultPublisher
    };
    let state = ctx.state.clone();
    let t = table.clone();
    let created = tokio::task::spawn_blocking(move || state.add_column(&t, &column, rule))
        .await
        .map_err(|e| DvError::internal(format!("the task creating the column failed: {e}")))?
        .map_err(error_of)?;
    let entity = match key {
        Key::Id(id) => id.to_string(),
        Key::Named(..) => format!("LogicalName='{}'", table.replace('\'', "''")),
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let id = format!("{}/EntityDefinitions({entity})/Attributes({})", ctx.api_root, created.metadata_id);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("OData-EntityId", v);
    }
    Ok(resp)
}

/// The column a request body describes.
fn parse(body: &[u8]) -> DvResult<NewColumn> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| DvError::bad_body(format!("The request body is not valid JSON: {e}")))?;
    let Value::Object(o) = v else {
        return Err(DvError::bad_body("The request body must be a JSON object describing the attribute."));
    };
    let type_name = attribute_type(&o)?;
    let kind = kind(type_name, &o)?;
    let schema_name = match o.get("SchemaName") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(literal(other, "Edm.String")),
    };
    if let Some(logical) = o.get("LogicalName").and_then(Value::as_str)
        && !logical.eq_ignore_ascii_case(&schema_name)
    {
        return Err(invalid(format!(
            "The LogicalName '{logical}' must be the SchemaName '{schema_name}' in lower case."
        )));
    }
    let required = match o.get("RequiredLevel").and_then(|r| r.get("Value")).and_then(Value::as_str) {
        None => RequiredLevel::None,
        Some("None") => RequiredLevel::None,
        Some("Recommended") => RequiredLevel::Recommended,
        Some("ApplicationRequired") => RequiredLevel::ApplicationRequired,
        Some("SystemRequired") => RequiredLevel::SystemRequired,
        Some(other) => return Err(enum_value(other, "AttributeRequiredLevel")),
    };
    Ok(NewColumn {
        display_name: o.get("DisplayName").and_then(label).unwrap_or_default(),
        description: o.get("Description").and_then(label).unwrap_or_default(),
        schema_name,
        required,
        kind,
    })
}

/// The derived type named by `@odata.type`, checked against the model.
fn attribute_type(o: &Map<String, Value>) -> DvResult<&'static str> {
    let Some(raw) = o.get("@odata.type").and_then(Value::as_str) else {
        return Err(DvError::bad_body(
            "The @odata.type annotation is required: name the attribute's type, e.g. Microsoft.Dynamics.CRM.StringAttributeMetadata.",
        ));
    };
    let raw = raw.trim_start_matches('#');
    let name = raw.strip_prefix("Microsoft.Dynamics.CRM.").or_else(|| raw.strip_prefix("mscrm.")).unwrap_or(raw);
    if let Some(&t) = NOT_EMULATED.iter().find(|t| **t == name) {
        return Err(not_emulated(&format!("Creating a column of type {NAMESPACE}.{t}")));
    }
    let Some(t) = types::meta_type(name).filter(|t| !t.is_complex) else {
        return Err(DvError::bad_body(format!(
            "A type named '{raw}' could not be resolved by the model. When a model is available, each type name must resolve to a valid type."
        )));
    };
    if !types::derives_from(t, "AttributeMetadata") {
        return Err(DvError::bad_body(format!(
            "An entry with type '{NAMESPACE}.{name}' was found, but it is not assignable to the expected type '{NAMESPACE}.AttributeMetadata'."
        )));
    }
    if t.is_abstract {
        return Err(DvError::bad_body(format!(
            "The type '{NAMESPACE}.{name}' is abstract; name a concrete attribute type such as {NAMESPACE}.StringAttributeMetadata."
        )));
    }
    Ok(t.name)
}

/// The type-specific settings of the body, with Dataverse's defaults for what it leaves out.
fn kind(type_name: &str, o: &Map<String, Value>) -> DvResult<NewColumnKind> {
    let expected = |attribute_type: &str| -> DvResult<()> {
        match o.get("AttributeType").and_then(Value::as_str) {
            Some(given) if given != attribute_type => Err(invalid(format!(
                "The AttributeType '{given}' does not match the @odata.type {NAMESPACE}.{type_name} (AttributeType '{attribute_type}')."
            ))),
            _ => Ok(()),
        }
    };
    let kind = match type_name {
        "StringAttributeMetadata" => {
            expected("String")?;
            let format = o.get("FormatName").and_then(|f| f.get("Value")).or_else(|| o.get("Format"));
            let format = match format.and_then(Value::as_str) {
                None => StringFormat::Text,
                Some(f) => StringFormat::parse(f).ok_or_else(|| enum_value(f, "StringFormatName"))?,
            };
            NewColumnKind::String { max_length: int(o, "MaxLength")?.unwrap_or(100), format }
        }
        "MemoAttributeMetadata" => {
            expected("Memo")?;
            NewColumnKind::Memo { max_length: int(o, "MaxLength")?.unwrap_or(2000) }
        }
        "IntegerAttributeMetadata" => {
            expected("Integer")?;
            NewColumnKind::Integer {
                min: int(o, "MinValue")?.unwrap_or(i32::MIN),
                max: int(o, "MaxValue")?.unwrap_or(i32::MAX),
            }
        }
        "BigIntAttributeMetadata" => {
            expected("BigInt")?;
            NewColumnKind::BigInt
        }
        "DecimalAttributeMetadata" | "DoubleAttributeMetadata" | "MoneyAttributeMetadata" => {
            let (attribute_type, lo, hi) = match type_name {
                "DecimalAttributeMetadata" => ("Decimal", DECIMAL_MIN, DECIMAL_MAX),
                "DoubleAttributeMetadata" => ("Double", DECIMAL_MIN, DECIMAL_MAX),
                _ => ("Money", MONEY_MIN, MONEY_MAX),
            };
            expected(attribute_type)?;
            let precision = int(o, "Precision")?.unwrap_or(2);
            let (min, max) = (float(o, "MinValue")?.unwrap_or(lo), float(o, "MaxValue")?.unwrap_or(hi));
            match attribute_type {
                "Decimal" => NewColumnKind::Decimal { precision, min, max },
                "Double" => NewColumnKind::Double { precision, min, max },
                _ => {
                    if let Some(source) = int::<u32>(o, "PrecisionSource")?
                        && source > 2
                    {
                        return Err(invalid(format!("The PrecisionSource {source} is not 0, 1 or 2.")));
                    }
                    NewColumnKind::Money { precision, min, max }
                }
            }
        }
        "BooleanAttributeMetadata" => {
            expected("Boolean")?;
            if o.get("DefaultValue").and_then(Value::as_bool) == Some(true) {
                return Err(not_emulated("A Yes/No column whose DefaultValue is true"));
            }
            if o.contains_key("GlobalOptionSet@odata.bind") {
                return Err(not_emulated("A Yes/No column using a global choice"));
            }
            let set = o.get("OptionSet");
            let option = |which: &str| set.and_then(|s| s.get(which)).and_then(|x| x.get("Label")).and_then(label);
            NewColumnKind::Boolean {
                false_label: option("FalseOption").unwrap_or_else(|| "No".into()),
                true_label: option("TrueOption").unwrap_or_else(|| "Yes".into()),
            }
        }
        "DateTimeAttributeMetadata" => {
            expected("DateTime")?;
            let date_only = match o.get("Format").and_then(Value::as_str) {
                None | Some("DateAndTime") => false,
                Some("DateOnly") => true,
                Some(f) => return Err(enum_value(f, "DateTimeFormat")),
            };
            let behavior = match o.get("DateTimeBehavior").and_then(|b| b.get("Value")).and_then(Value::as_str) {
                None => DateTimeBehavior::UserLocal,
                Some(b) => {
                    DateTimeBehavior::parse(b).ok_or_else(|| invalid(format!("'{b}' is not a DateTimeBehavior.")))?
                }
            };
            NewColumnKind::DateTime { behavior, date_only }
        }
        "PicklistAttributeMetadata" | "MultiSelectPicklistAttributeMetadata" => {
            let multi = type_name == "MultiSelectPicklistAttributeMetadata";
            expected(if multi { "Virtual" } else { "Picklist" })?;
            let options = options(o)?;
            if multi { NewColumnKind::MultiSelectPicklist { options } } else { NewColumnKind::Picklist { options } }
        }
        "AttributeMetadata" => {
            return Err(invalid(format!(
                "Name the attribute's derived type in @odata.type (e.g. {NAMESPACE}.StringAttributeMetadata), not {NAMESPACE}.AttributeMetadata."
            )));
        }
        "LookupAttributeMetadata" => {
            return Err(invalid(
                "A lookup column is created with its relationship (POST RelationshipDefinitions with a OneToManyRelationshipMetadata, or the CreateCustomerRelationships action), not through the Attributes collection.",
            ));
        }
        other => return Err(not_emulated(&format!("Creating a column of type {NAMESPACE}.{other}"))),
    };
    Ok(kind)
}

/// The local options of a choice column.
fn options(o: &Map<String, Value>) -> DvResult<Vec<NewOption>> {
    if o.contains_key("GlobalOptionSet@odata.bind") {
        return Err(not_emulated("A choice column using a global choice (GlobalOptionSet@odata.bind)"));
    }
    let Some(set) = o.get("OptionSet").filter(|s| !s.is_null()) else { return Ok(vec![]) };
    if set.get("IsGlobal").and_then(Value::as_bool) == Some(true) {
        return Err(not_emulated("A choice column using a global choice (OptionSet.IsGlobal true)"));
    }
    let items = match set.get("Options") {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(literal(other, "Collection(Microsoft.Dynamics.CRM.OptionMetadata)")),
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(item) = item else {
                return Err(literal(item, "Microsoft.Dynamics.CRM.OptionMetadata"));
            };
            Ok(NewOption { value: int(item, "Value")?, label: item.get("Label").and_then(label).unwrap_or_default() })
        })
        .collect()
}

/// The text of a `Label`: its 1033 (English) localized label, else the first one, else the
/// user's localized label.
fn label(v: &Value) -> Option<String> {
    let text = |l: &Value| l.get("Label").and_then(Value::as_str).map(str::to_string);
    let localized = v.get("LocalizedLabels").and_then(Value::as_array);
    localized
        .and_then(|ls| ls.iter().find(|l| l.get("LanguageCode").and_then(Value::as_i64) == Some(1033)).and_then(text))
        .or_else(|| localized.and_then(|ls| ls.iter().find_map(text)))
        .or_else(|| v.get("UserLocalizedLabel").and_then(text))
}

/// An integer property (absent or null: `None`).
fn int<T: TryFrom<i64>>(o: &Map<String, Value>, key: &str) -> DvResult<Option<T>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(i) => T::try_from(i).map(Some).map_err(|_| invalid(format!("The {key} {i} is out of range."))),
            None => Err(literal(v, "Edm.Int32")),
        },
    }
}

/// A number property (absent or null: `None`).
fn float(o: &Map<String, Value>, key: &str) -> DvResult<Option<f64>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| literal(v, "Edm.Double")),
    }
}

fn literal(v: &Value, edm: &str) -> DvError {
    DvError::bad_body(format!("Cannot convert the literal '{v}' to the expected type '{edm}'."))
}

fn enum_value(v: &str, enum_type: &str) -> DvError {
    DvError::bad_body(format!("The value '{v}' is not a valid member of the enum type '{NAMESPACE}.{enum_type}'."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: Value) -> DvResult<NewColumn> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn the_documented_bodies_parse() {
        let label = |t: &str| json!({"LocalizedLabels": [{"Label": t, "LanguageCode": 1033}]});
        let c = parse_json(json!({
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "AttributeType": "String", "SchemaName": "new_BankName", "MaxLength": 100,
            "FormatName": {"Value": "Email"}, "DisplayName": label("Bank Name"),
            "Description": label("Type the name of the bank"), "RequiredLevel": {"Value": "None"},
        }))
        .unwrap();
        assert_eq!((c.schema_name.as_str(), c.display_name.as_str()), ("new_BankName", "Bank Name"));
        assert_eq!(c.kind, NewColumnKind::String { max_length: 100, format: StringFormat::Email });
        let b = parse_json(json!({
            "@odata.type": "Microsoft.Dynamics.CRM.BooleanAttributeMetadata", "SchemaName": "new_Boolean",
            "OptionSet": {"TrueOption": {"Value": 1, "Label": label("True")}, "FalseOption": {"Value": 0, "Label": label("False")}},
        }))
        .unwrap();
        assert_eq!(b.kind, NewColumnKind::Boolean { false_label: "False".into(), true_label: "True".into() });
        let p = parse_json(json!({
            "@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata", "SchemaName": "new_Choice",
            "OptionSet": {"Options": [{"Value": 727000000, "Label": label("Bravo")}, {"Value": null, "Label": label("Delta")}], "IsGlobal": false},
        }))
        .unwrap();
        let NewColumnKind::Picklist { options } = p.kind else { panic!("a picklist") };
        assert_eq!(options[0], NewOption { value: Some(727_000_000), label: "Bravo".into() });
        assert_eq!(options[1].value, None);
        let d = parse_json(
            json!({"@odata.type": "#Microsoft.Dynamics.CRM.DateTimeAttributeMetadata", "SchemaName": "new_D", "Format": "DateOnly"}),
        );
        assert_eq!(d.unwrap().kind, NewColumnKind::DateTime { behavior: DateTimeBehavior::UserLocal, date_only: true });
    }

    #[test]
    fn bodies_dataverse_refuses() {
        let code = |v: Value| parse_json(v).unwrap_err();
        assert_eq!(code(json!({"SchemaName": "new_X"})).code, "0x80048d19");
        let e = code(json!({"@odata.type": "Microsoft.Dynamics.CRM.NopeAttributeMetadata"}));
        assert!(e.message.contains("could not be resolved by the model"), "{e}");
        assert_eq!(
            code(json!({"@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata"})).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            code(json!({"@odata.type": "Microsoft.Dynamics.CRM.ImageAttributeMetadata"})).status,
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(code(json!({"@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata"})).code, "0x80040203");
        assert_eq!(
            code(json!({"@odata.type": "Microsoft.Dynamics.CRM.AttributeMetadata"})).status,
            StatusCode::BAD_REQUEST
        );
        let e = code(json!({"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "AttributeType": "Memo"}));
        assert_eq!(e.code, "0x80040203");
        let e = code(json!({"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "MaxLength": "x"}));
        assert_eq!(e.code, "0x80048d19");
        assert_eq!(code(json!([1])).code, "0x80048d19");
        let e = error_of(AddColumnError::Duplicate { name: "new_X".into(), table: "contact".into() });
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "0x80047013"));
        assert_eq!(error_of(AddColumnError::UnknownTable("nope".into())).status, StatusCode::NOT_FOUND);
    }
}
