//! `OptionSetMetadata` (choice, state, status, multi-select choice) and
//! `BooleanOptionSetMetadata` (yes/no) JSON. All option sets of the emulated tables are local
//! to their column (`IsGlobal: false`); `GlobalOptionSet` of a column returns the same set, as the
//! service does for local sets.

use super::entity::{introduced_version, label, managed, stable_id};
use crate::schema::{AttrKind, Column, OptionDef, Table};
use serde_json::{Value, json};
use uuid::Uuid;

/// The option set name of `c` (`account_industrycode`).
pub fn name(t: &Table, c: &Column) -> String {
    c.option_set_name.clone().unwrap_or_else(|| format!("{}_{}", t.logical_name, c.logical_name))
}

/// The stable `MetadataId` of `c`'s option set.
pub fn id(t: &Table, c: &Column) -> Uuid {
    stable_id("optionset", &format!("{}.{}", t.logical_name, c.logical_name))
}

/// The metadata type of `c`'s option set: `BooleanOptionSetMetadata` for yes/no columns,
/// `OptionSetMetadata` for the choice types, `None` for columns without options.
pub fn type_name(c: &Column) -> Option<&'static str> {
    match c.kind {
        AttrKind::Boolean => Some("BooleanOptionSetMetadata"),
        k if k.has_options() => Some("OptionSetMetadata"),
        _ => None,
    }
}

fn option_json(t: &Table, c: &Column, o: &OptionDef) -> Value {
    let seed = format!("{}.{}.{}", t.logical_name, c.logical_name, o.value);
    let mut v = serde_json::Map::new();
    match c.kind {
        AttrKind::Status => {
            v.insert("@odata.type".into(), json!("#Microsoft.Dynamics.CRM.StatusOptionMetadata"));
        }
        AttrKind::State => {
            v.insert("@odata.type".into(), json!("#Microsoft.Dynamics.CRM.StateOptionMetadata"));
        }
        _ => {}
    }
    let common = json!({
        "Value": o.value,
        "Color": null,
        "IsManaged": !c.is_custom,
        "ExternalValue": null,
        "ParentValues": [],
        "Tag": null,
        "IsHidden": false,
        "MetadataId": null,
        "HasChanged": null,
        "Label": label(&o.label, &format!("option:{seed}"), !c.is_custom),
        "Description": label("", &format!("option:{seed}:description"), !c.is_custom),
    });
    if let Value::Object(m) = common {
        v.extend(m);
    }
    match c.kind {
        AttrKind::Status => {
            v.insert("State".into(), json!(o.state));
            v.insert("TransitionData".into(), Value::Null);
        }
        AttrKind::State => {
            v.insert("DefaultStatus".into(), json!(o.default_status));
            v.insert("InvariantName".into(), json!(o.invariant_name.as_deref().unwrap_or(&o.label)));
        }
        _ => {}
    }
    Value::Object(v)
}

/// The option set of `c`, or `None` when the column has none.
pub fn option_set_json(t: &Table, c: &Column) -> Option<Value> {
    let ty = type_name(c)?;
    let set_type = match c.kind {
        AttrKind::Boolean => "Boolean",
        AttrKind::State => "State",
        AttrKind::Status => "Status",
        _ => "Picklist",
    };
    let seed = format!("optionset:{}.{}", t.logical_name, c.logical_name);
    let mut v = json!({
        "MetadataId": id(t, c),
        "HasChanged": null,
        "Description": label("", &format!("{seed}:description"), !c.is_custom),
        "DisplayName": label(&c.display_name, &format!("{seed}:displayname"), !c.is_custom),
        "ExternalTypeName": null,
        "IntroducedVersion": introduced_version(c.is_custom),
        "IsCustomizable": managed(true, false, "iscustomizable"),
        "IsCustomOptionSet": c.is_custom,
        "IsGlobal": false,
        "IsManaged": !c.is_custom,
        "Name": name(t, c),
        "OptionSetType": set_type,
        "ParentOptionSetName": null,
    });
    let m = v.as_object_mut().expect("object");
    if ty == "BooleanOptionSetMetadata" {
        let find = |value: i32| {
            c.options.iter().find(|o| o.value == value).map(|o| option_json(t, c, o)).unwrap_or_else(|| {
                let text = if value == 1 { "Yes" } else { "No" };
                let o = OptionDef {
                    value,
                    label: text.to_string(),
                    state: None,
                    default_status: None,
                    invariant_name: None,
                };
                option_json(t, c, &o)
            })
        };
        m.insert("TrueOption".into(), find(1));
        m.insert("FalseOption".into(), find(0));
    } else {
        m.insert("Options".into(), c.options.iter().map(|o| option_json(t, c, o)).collect());
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn set(table: &str, col: &str) -> Value {
        let s = Schema::builtin();
        let t = s.table(table).unwrap();
        option_set_json(t, t.column(col).unwrap()).unwrap()
    }

    #[test]
    fn picklist_options() {
        let o = set("account", "accountcategorycode");
        assert_eq!(o["Name"], "account_accountcategorycode");
        assert_eq!(o["IsGlobal"], false);
        assert_eq!(o["OptionSetType"], "Picklist");
        assert_eq!(o["Options"][0]["Value"], 1);
        assert_eq!(o["Options"][0]["Label"]["UserLocalizedLabel"]["Label"], "Preferred Customer");
        assert_eq!(o["Options"][0]["Label"]["LocalizedLabels"][0]["LanguageCode"], 1033);
        assert!(o["Options"][0].get("@odata.type").is_none());
    }

    #[test]
    fn state_and_status_options() {
        let st = set("opportunity", "statecode");
        assert_eq!(st["OptionSetType"], "State");
        assert_eq!(st["Options"][1]["@odata.type"], "#Microsoft.Dynamics.CRM.StateOptionMetadata");
        assert_eq!(st["Options"][1]["InvariantName"], "Won");
        assert_eq!(st["Options"][1]["DefaultStatus"], 3);
        let su = set("opportunity", "statuscode");
        assert_eq!(su["OptionSetType"], "Status");
        assert_eq!(su["Options"][2]["@odata.type"], "#Microsoft.Dynamics.CRM.StatusOptionMetadata");
        assert_eq!(su["Options"][2]["Value"], 3);
        assert_eq!(su["Options"][2]["State"], 1);
    }

    #[test]
    fn boolean_options() {
        let b = set("account", "creditonhold");
        assert_eq!(b["OptionSetType"], "Boolean");
        assert_eq!(b["TrueOption"]["Value"], 1);
        assert_eq!(b["TrueOption"]["Label"]["UserLocalizedLabel"]["Label"], "Yes");
        assert_eq!(b["FalseOption"]["Label"]["UserLocalizedLabel"]["Label"], "No");
        assert!(b.get("Options").is_none());
        let s = Schema::builtin();
        let t = s.table("account").unwrap();
        assert!(option_set_json(t, t.column("name").unwrap()).is_none());
    }
}
