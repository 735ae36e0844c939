//! Tests of `handle`: every path form, `$select`/`$filter`/`$expand`, casts, context URLs and
//! errors, plus the consistency of the JSON builders with the declared metadata types.

use super::*;
use crate::schema::AttrKind;

const API: &str = "https://localhost:8443/api/data/v9.2";

fn get(path: &str, q: &[(&str, &str)]) -> DvResult<Value> {
    let schema = Schema::builtin();
    let query: Vec<(String, String)> = q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    handle(&schema, &Urls::for_port(8443), path, &query)
}

fn ok(path: &str, q: &[(&str, &str)]) -> Value {
    get(path, q).unwrap_or_else(|e| panic!("{path} {q:?}: {e}"))
}

fn err(path: &str, q: &[(&str, &str)]) -> DvError {
    match get(path, q) {
        Ok(v) => panic!("{path} {q:?} succeeded: {v}"),
        Err(e) => e,
    }
}

fn names(v: &Value, prop: &str) -> Vec<String> {
    v["value"].as_array().unwrap().iter().map(|i| i[prop].as_str().unwrap_or_default().to_string()).collect()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

// ---------------------------------------------------------------- EntityDefinitions

#[test]
fn entity_definitions_collection() {
    let v = ok("EntityDefinitions", &[]);
    assert_eq!(v["@odata.context"], format!("{API}/$metadata#EntityDefinitions"));
    let all = names(&v, "LogicalName");
    for t in ["account", "contact", "lead", "opportunity", "systemuser", "businessunit", "team", "new_widget"] {
        assert!(all.iter().any(|n| n == t), "{t} missing");
    }
    let account = v["value"].as_array().unwrap().iter().find(|e| e["LogicalName"] == "account").unwrap();
    assert!(account.get("@odata.type").is_none(), "exact type carries no @odata.type");
    assert!(account.get("Attributes").is_none(), "navigation properties only when expanded");
    assert_eq!(account["EntitySetName"], "accounts");
}

#[test]
fn entity_definitions_select_and_filter() {
    let v = ok(
        "EntityDefinitions",
        &[
            ("$select", "LogicalName,EntitySetName"),
            ("$filter", "LogicalName eq 'account' or LogicalName eq 'contact'"),
        ],
    );
    assert_eq!(v["@odata.context"], format!("{API}/$metadata#EntityDefinitions(LogicalName,EntitySetName)"));
    assert_eq!(names(&v, "LogicalName"), ["account", "contact"]);
    let first = &v["value"][0];
    assert_eq!(keys(first), ["MetadataId", "EntitySetName", "LogicalName"], "MetadataId is always returned");

    let v = ok(
        "EntityDefinitions",
        &[("$select", "LogicalName"), ("$filter", "OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'")],
    );
    let mut user_owned = names(&v, "LogicalName");
    user_owned.sort();
    assert_eq!(user_owned, ["account", "contact", "lead", "new_widget", "opportunity"]);

    let v = ok("EntityDefinitions", &[("$select", "LogicalName"), ("$filter", "IsCustomEntity eq true")]);
    assert_eq!(names(&v, "LogicalName"), ["new_widget"]);
    let v = ok("EntityDefinitions", &[("$select", "LogicalName"), ("$filter", "ChangeTrackingEnabled eq true")]);
    assert!(!names(&v, "LogicalName").is_empty());
    let v = ok("EntityDefinitions", &[("$filter", "CanCreateAttributes/Value eq true and ObjectTypeCode eq 2")]);
    assert_eq!(names(&v, "LogicalName"), ["contact"]);
    let v = ok("EntityDefinitions", &[("$filter", "not (ObjectTypeCode lt 9000)"), ("$select", "ObjectTypeCode")]);
    assert!(v["value"].as_array().unwrap().iter().all(|e| e["ObjectTypeCode"].as_i64().unwrap() >= 9000));
    let v = ok("EntityDefinitions", &[("$filter", "startswith(LogicalName,'new_')"), ("$select", "LogicalName")]);
    assert_eq!(names(&v, "LogicalName"), ["new_widget"]);
}

#[test]
fn entity_by_logical_name_and_by_id() {
    let v = ok("EntityDefinitions(LogicalName='account')", &[]);
    assert_eq!(v["@odata.context"], format!("{API}/$metadata#EntityDefinitions/$entity"));
    assert_eq!(v["LogicalName"], "account");
    assert_eq!(v["PrimaryIdAttribute"], "accountid");
    assert_eq!(v["DisplayName"]["UserLocalizedLabel"]["LanguageCode"], 1033);
    let id = v["MetadataId"].as_str().unwrap().to_string();

    let by_id = ok(&format!("EntityDefinitions({id})"), &[("$select", "LogicalName,EntitySetName")]);
    assert_eq!(
        by_id["@odata.context"],
        format!("{API}/$metadata#EntityDefinitions(LogicalName,EntitySetName)/$entity")
    );
    assert_eq!(by_id["LogicalName"], "account");
    assert_eq!(by_id["MetadataId"], id.as_str());
    assert_eq!(keys(&by_id).len(), 4);
    let named_id = ok(&format!("EntityDefinitions(MetadataId={id})"), &[("$select", "LogicalName")]);
    assert_eq!(named_id["LogicalName"], "account");
}

#[test]
fn entity_property_segment() {
    let v = ok("EntityDefinitions(LogicalName='opportunity')/EntitySetName", &[]);
    assert_eq!(v["@odata.context"], format!("{API}/$metadata#EntityDefinitions('opportunity')/EntitySetName"));
    assert_eq!(v["value"], "opportunities");
    assert_eq!(err("EntityDefinitions(LogicalName='account')/Nope", &[]).code, "0x8006088a");
}

#[test]
fn entity_expands() {
    let v = ok(
        "EntityDefinitions(LogicalName='account')",
        &[
            ("$select", "LogicalName"),
            (
                "$expand",
                "Attributes($select=LogicalName;$filter=AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'),Keys,ManyToOneRelationships($select=SchemaName),OneToManyRelationships,ManyToManyRelationships",
            ),
        ],
    );
    assert_eq!(
        v["@odata.context"],
        format!(
            "{API}/$metadata#EntityDefinitions(LogicalName,Attributes(LogicalName),Keys(),\
             ManyToOneRelationships(SchemaName),OneToManyRelationships(),ManyToManyRelationships())/$entity"
        )
    );
    let attrs = v["Attributes"].as_array().unwrap();
    let mut picklists: Vec<&str> = attrs.iter().map(|a| a["LogicalName"].as_str().unwrap()).collect();
    picklists.sort_unstable();
    assert_eq!(picklists, ["accountcategorycode", "customertypecode", "industrycode"]);
    assert_eq!(attrs[0]["@odata.type"], "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata");
    assert_eq!(keys(&attrs[0]), ["@odata.type", "MetadataId", "LogicalName"]);
    assert_eq!(v["Keys"][0]["KeyAttributes"], json!(["accountnumber"]));
    assert_eq!(v["Keys"][0]["EntityKeyIndexStatus"], "Active");
    let m2o = v["ManyToOneRelationships"].as_array().unwrap();
    assert!(m2o.iter().any(|r| r["SchemaName"] == "account_primary_contact"));
    assert!(m2o.iter().all(|r| r.get("ReferencedEntity").is_none()));
    let o2m = v["OneToManyRelationships"].as_array().unwrap();
    assert!(o2m.iter().any(|r| r["SchemaName"] == "contact_customer_accounts" && r["ReferencingEntity"] == "contact"));
    assert_eq!(v["ManyToManyRelationships"], json!([]));
}

#[test]
fn expanded_attributes_show_common_properties_only() {
    let v = ok(
        "EntityDefinitions",
        &[("$filter", "LogicalName eq 'account'"), ("$select", "LogicalName"), ("$expand", "Attributes")],
    );
    assert_eq!(v["@odata.context"], format!("{API}/$metadata#EntityDefinitions(LogicalName,Attributes())"));
    let name = v["value"][0]["Attributes"].as_array().unwrap().iter().find(|a| a["LogicalName"] == "name").unwrap();
    assert_eq!(name["@odata.type"], "#Microsoft.Dynamics.CRM.StringAttributeMetadata");
    assert!(name.get("MaxLength").is_none());
    assert_eq!(name["AttributeType"], "String");
    // Option sets cannot be expanded without a cast.
    let e = err("EntityDefinitions(LogicalName='account')", &[("$expand", "Attributes($expand=OptionSet)")]);
    assert_eq!(
        e.message,
        "Could not find a property named 'OptionSet' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'."
    );
}

// ---------------------------------------------------------------- Attributes

#[test]
fn attributes_collection_and_filters() {
    let v = ok(
        "EntityDefinitions(LogicalName='account')/Attributes",
        &[("$select", "LogicalName,AttributeType,IsValidForRead"), ("$filter", "IsValidForRead eq true")],
    );
    assert_eq!(
        v["@odata.context"],
        format!("{API}/$metadata#EntityDefinitions('account')/Attributes(LogicalName,AttributeType,IsValidForRead)")
    );
    let s = Schema::builtin();
    assert_eq!(v["value"].as_array().unwrap().len(), s.table("account").unwrap().columns.len());
    let first = &v["value"][0];
    assert_eq!(first["@odata.type"], "#Microsoft.Dynamics.CRM.UniqueIdentifierAttributeMetadata");
    assert_eq!(first["AttributeType"], "Uniqueidentifier");

    let v = ok(
        "EntityDefinitions(LogicalName='account')/Attributes",
        &[
            ("$select", "SchemaName"),
            ("$filter", "RequiredLevel/Value eq Microsoft.Dynamics.CRM.AttributeRequiredLevel'ApplicationRequired'"),
        ],
    );
    assert_eq!(names(&v, "SchemaName"), ["Name"]);

    let v = ok(
        "EntityDefinitions(LogicalName='contact')/Attributes",
        &[
            ("$select", "LogicalName"),
            ("$filter", "AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Customer'"),
        ],
    );
    assert_eq!(names(&v, "LogicalName"), ["parentcustomerid"]);
    let v = ok(
        "EntityDefinitions(LogicalName='account')/Attributes",
        &[("$select", "LogicalName"), ("$filter", "IsValidForCreate eq false and IsValidForUpdate eq false")],
    );
    assert!(names(&v, "LogicalName").contains(&"createdon".to_string()));
    assert!(!names(&v, "LogicalName").contains(&"name".to_string()));
    let v = ok(
        "EntityDefinitions(LogicalName='account')/Attributes",
        &[("$select", "LogicalName"), ("$filter", "AttributeTypeName/Value eq 'MoneyType'")],
    );
    assert_eq!(names(&v, "LogicalName"), ["revenue", "revenue_base"]);
}

#[test]
fn attributes_of_entity_addressed_by_id() {
    let s = Schema::builtin();
    let t = s.table("account").unwrap();
    let v = ok(
        &format!("EntityDefinitions({})/Attributes", t.metadata_id),
        &[("$select", "MetadataId"), ("$filter", "LogicalName eq 'accountcategorycode'")],
    );
    assert_eq!(
        v["@odata.context"],
        format!("{API}/$metadata#EntityDefinitions({})/Attributes(MetadataId)", t.metadata_id)
    );
    assert_eq!(v["value"][0]["@odata.type"], "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata");
    assert_eq!(v["value"][0]["MetadataId"], json!(t.column("accountcategorycode").unwrap().metadata_id));
    assert_eq!(keys(&v["value"][0]).len(), 2);
}

#[test]
fn type_specific_properties_need_a_cast() {
    let e = err("EntityDefinitions(LogicalName='account')/Attributes", &[("$select", "LogicalName,MaxLength")]);
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.code, "0x80060888");
    assert_eq!(
        e.message,
        "Could not find a property named 'MaxLength' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'."
    );
    let e = err("EntityDefinitions(LogicalName='account')/Attributes", &[("$filter", "MaxLength gt 100")]);
    assert!(e.message.contains("'MaxLength'"));

    let v = ok(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata",
        &[("$select", "LogicalName,MaxLength,Format"), ("$filter", "MaxLength ge 160")],
    );
    assert_eq!(
        v["@odata.context"],
        format!(
            "{API}/$metadata#EntityDefinitions('account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata\
             (LogicalName,MaxLength,Format)"
        )
    );
    let mut long: Vec<String> = names(&v, "LogicalName");
    long.sort();
    assert_eq!(long, ["name", "websiteurl"]);
    assert!(v["value"][0].get("@odata.type").is_none(), "exact cast type carries no @odata.type");
}

#[test]
fn every_attribute_cast() {
    let s = Schema::builtin();
    let w = s.table("new_widget").unwrap();
    let mut seen = std::collections::HashSet::new();
    for c in &w.columns {
        let cast = c.kind.metadata_type();
        if !seen.insert(cast) {
            continue;
        }
        let v =
            ok(&format!("EntityDefinitions(LogicalName='new_widget')/Attributes/Microsoft.Dynamics.CRM.{cast}"), &[]);
        let items = v["value"].as_array().unwrap();
        assert!(!items.is_empty(), "{cast}");
        for i in items {
            assert!(i.get("@odata.type").is_none());
            let col = w.column(i["LogicalName"].as_str().unwrap()).unwrap();
            assert_eq!(col.kind.metadata_type(), cast);
        }
    }
    assert_eq!(seen.len(), 15, "every derived attribute type is reachable");

    let lookups = ok(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata",
        &[("$select", "LogicalName,Targets")],
    );
    let owner = lookups["value"].as_array().unwrap().iter().find(|a| a["LogicalName"] == "ownerid").unwrap();
    assert_eq!(owner["Targets"], json!(["systemuser", "team"]));
    let money = ok(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
        &[("$select", "LogicalName,Precision")],
    );
    assert_eq!(money["value"][0]["Precision"], 2);
    let dates = ok(
        "EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
        &[("$select", "LogicalName,Format,DateTimeBehavior"), ("$filter", "DateTimeBehavior/Value eq 'DateOnly'")],
    );
    assert_eq!(names(&dates, "LogicalName"), ["birthdate"]);
    assert_eq!(dates["value"][0]["Format"], "DateOnly");
    assert_eq!(dates["value"][0]["DateTimeBehavior"], json!({"Value": "DateOnly"}));
}

#[test]
fn bad_casts() {
    let base = "EntityDefinitions(LogicalName='account')/Attributes/";
    let e = err(&format!("{base}Microsoft.Dynamics.CRM.EnumAttributeMetadata"), &[]);
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    let e = err(&format!("{base}Microsoft.Dynamics.CRM.EntityMetadata"), &[]);
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    let e = err(&format!("{base}Microsoft.Dynamics.CRM.NoSuchType"), &[]);
    assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "0x8006088a"));
    let e = err(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        &[],
    );
    assert_eq!(e.status, StatusCode::NOT_FOUND);
}

#[test]
fn single_attribute_forms() {
    let v = ok("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')", &[]);
    assert_eq!(v["@odata.context"], format!("{API}/$metadata#EntityDefinitions('account')/Attributes/$entity"));
    assert_eq!(v["@odata.type"], "#Microsoft.Dynamics.CRM.StringAttributeMetadata");
    assert_eq!(v["LogicalName"], "name");
    assert!(v.get("MaxLength").is_none());
    let id = v["MetadataId"].as_str().unwrap().to_string();

    let v = ok(&format!("EntityDefinitions(LogicalName='account')/Attributes({id})"), &[("$select", "LogicalName")]);
    assert_eq!(v["LogicalName"], "name");
    let v = ok(
        &format!(
            "EntityDefinitions(LogicalName='account')/Attributes({id})/Microsoft.Dynamics.CRM.StringAttributeMetadata"
        ),
        &[("$select", "LogicalName,MaxLength")],
    );
    assert_eq!(
        v["@odata.context"],
        format!(
            "{API}/$metadata#EntityDefinitions('account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata\
             (LogicalName,MaxLength)/$entity"
        )
    );
    assert_eq!(v["MaxLength"], 160);
    assert!(v.get("@odata.type").is_none());
    let v = ok(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')/Microsoft.Dynamics.CRM.StringAttributeMetadata/MaxLength",
        &[],
    );
    assert_eq!(v["value"], 160);
}

#[test]
fn picklist_cast_with_option_sets() {
    let v = ok(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        &[("$select", "LogicalName"), ("$expand", "OptionSet,GlobalOptionSet")],
    );
    assert_eq!(
        v["@odata.context"],
        format!(
            "{API}/$metadata#EntityDefinitions('account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata\
             (LogicalName,OptionSet(),GlobalOptionSet())"
        )
    );
    let cat = v["value"].as_array().unwrap().iter().find(|a| a["LogicalName"] == "accountcategorycode").unwrap();
    assert_eq!(cat["OptionSet"]["Name"], "account_accountcategorycode");
    assert_eq!(cat["OptionSet"]["Options"][0]["Label"]["UserLocalizedLabel"]["Label"], "Preferred Customer");
    assert_eq!(cat["GlobalOptionSet"]["MetadataId"], cat["OptionSet"]["MetadataId"]);

    let v = ok(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='accountcategorycode')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        &[("$select", "LogicalName"), ("$expand", "OptionSet($select=Options),GlobalOptionSet($select=Options)")],
    );
    assert_eq!(
        v["@odata.context"],
        format!(
            "{API}/$metadata#EntityDefinitions('account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata\
             (LogicalName,OptionSet(Options),GlobalOptionSet(Options))/$entity"
        )
    );
    assert_eq!(keys(&v["OptionSet"]), ["MetadataId", "Options"]);
    assert_eq!(v["OptionSet"]["Options"][1]["Value"], 2);
    assert_eq!(v["OptionSet"]["Options"][1]["Label"]["LocalizedLabels"][0]["Label"], "Standard");
}

#[test]
fn option_set_segment() {
    let s = Schema::builtin();
    let col = s.table("account").unwrap().column("industrycode").unwrap();
    let path = format!(
        "EntityDefinitions(LogicalName='account')/Attributes({})/Microsoft.Dynamics.CRM.PicklistAttributeMetadata/OptionSet",
        col.metadata_id
    );
    let v = ok(&path, &[("$select", "Options")]);
    assert_eq!(
        v["@odata.context"],
        format!(
            "{API}/$metadata#EntityDefinitions('account')/Attributes({})/Microsoft.Dynamics.CRM.PicklistAttributeMetadata\
             /OptionSet(Options)/$entity",
            col.metadata_id
        )
    );
    assert_eq!(keys(&v), ["@odata.context", "MetadataId", "Options"]);
    assert_eq!(v["Options"].as_array().unwrap().len(), col.options.len());
    // Without the cast, OptionSet is not a segment of AttributeMetadata.
    let e = err(&format!("EntityDefinitions(LogicalName='account')/Attributes({})/OptionSet", col.metadata_id), &[]);
    assert_eq!(e.code, "0x8006088a");
}

#[test]
fn state_status_boolean_and_multiselect_option_sets() {
    let state = ok(
        "EntityDefinitions(LogicalName='opportunity')/Attributes/Microsoft.Dynamics.CRM.StateAttributeMetadata",
        &[("$select", "LogicalName"), ("$expand", "OptionSet")],
    );
    let opts = &state["value"][0]["OptionSet"]["Options"];
    assert_eq!(opts[2]["@odata.type"], "#Microsoft.Dynamics.CRM.StateOptionMetadata");
    assert_eq!(opts[2]["InvariantName"], "Lost");
    assert_eq!(opts[2]["DefaultStatus"], 4);
    let status = ok(
        "EntityDefinitions(LogicalName='opportunity')/Attributes(LogicalName='statuscode')/Microsoft.Dynamics.CRM.StatusAttributeMetadata/OptionSet",
        &[],
    );
    assert_eq!(status["OptionSetType"], "Status");
    assert_eq!(status["Options"][3]["State"], 2);
    let boolean = ok(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
        &[("$select", "LogicalName,DefaultValue"), ("$expand", "OptionSet($select=TrueOption,FalseOption)")],
    );
    let credit = &boolean["value"][0];
    assert_eq!(credit["LogicalName"], "creditonhold");
    assert_eq!(credit["OptionSet"]["TrueOption"]["Label"]["UserLocalizedLabel"]["Label"], "Yes");
    assert_eq!(credit["OptionSet"]["FalseOption"]["Value"], 0);
    let e = err(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
        &[("$expand", "OptionSet($select=Options)")],
    );
    assert!(e.message.contains("BooleanOptionSetMetadata"));
    let multi = ok(
        "EntityDefinitions(LogicalName='new_widget')/Attributes/Microsoft.Dynamics.CRM.MultiSelectPicklistAttributeMetadata",
        &[("$expand", "OptionSet($select=Name,Options)")],
    );
    assert_eq!(multi["value"][0]["AttributeType"], "Virtual");
    assert_eq!(multi["value"][0]["AttributeTypeName"]["Value"], "MultiSelectPicklistType");
    assert_eq!(multi["value"][0]["OptionSet"]["Options"][2]["Label"]["UserLocalizedLabel"]["Label"], "Blue");
}

// ---------------------------------------------------------------- relationships and keys

#[test]
fn entity_relationships() {
    let v = ok(
        "EntityDefinitions(LogicalName='contact')/ManyToOneRelationships",
        &[("$select", "SchemaName,ReferencedEntity,ReferencingAttribute")],
    );
    assert_eq!(
        v["@odata.context"],
        format!(
            "{API}/$metadata#EntityDefinitions('contact')/ManyToOneRelationships(SchemaName,ReferencedEntity,ReferencingAttribute)"
        )
    );
    let rows = v["value"].as_array().unwrap();
    let cust = rows.iter().find(|r| r["SchemaName"] == "contact_customer_accounts").unwrap();
    assert_eq!(cust["ReferencedEntity"], "account");
    assert_eq!(cust["ReferencingAttribute"], "parentcustomerid");
    assert!(cust.get("@odata.type").is_none());

    let v = ok(
        "EntityDefinitions(LogicalName='account')/OneToManyRelationships",
        &[("$filter", "ReferencingEntity eq 'opportunity'")],
    );
    let mut rels = names(&v, "SchemaName");
    rels.sort();
    assert_eq!(rels, ["opportunity_customer_accounts", "opportunity_parent_account"]);
    let full = &v["value"][0];
    assert_eq!(full["RelationshipType"], "OneToManyRelationship");
    assert!(full["CascadeConfiguration"]["Delete"].is_string());
    assert!(full["ReferencedEntityNavigationPropertyName"].is_string());

    let v = ok("EntityDefinitions(LogicalName='account')/ManyToManyRelationships", &[]);
    assert_eq!(v["value"], json!([]));
    let v = ok(
        "EntityDefinitions(LogicalName='contact')/ManyToOneRelationships(SchemaName='contact_customer_accounts')",
        &[],
    );
    assert_eq!(
        v["@odata.context"],
        format!("{API}/$metadata#EntityDefinitions('contact')/ManyToOneRelationships/$entity")
    );
    assert_eq!(v["ReferencingEntityNavigationPropertyName"], "parentcustomerid_account");
}

#[test]
fn relationship_definitions() {
    let v = ok("RelationshipDefinitions", &[("$select", "SchemaName")]);
    assert_eq!(v["@odata.context"], format!("{API}/$metadata#RelationshipDefinitions(SchemaName)"));
    assert_eq!(v["value"].as_array().unwrap().len(), Schema::builtin().relationships.len());
    assert_eq!(v["value"][0]["@odata.type"], "#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata");
    let plain = ok("RelationshipDefinitions", &[]);
    assert!(plain["value"][0].get("ReferencedEntity").is_none(), "base type properties only without a cast");
    let e = err("RelationshipDefinitions", &[("$filter", "ReferencedEntity eq 'account'")]);
    assert!(e.message.contains("RelationshipMetadataBase"));

    let v = ok(
        "RelationshipDefinitions/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        &[("$select", "SchemaName"), ("$filter", "ReferencedEntity eq 'account'")],
    );
    assert_eq!(
        v["@odata.context"],
        format!(
            "{API}/$metadata#RelationshipDefinitions/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata(SchemaName)"
        )
    );
    let via_entity =
        ok("EntityDefinitions(LogicalName='account')/OneToManyRelationships", &[("$select", "SchemaName")]);
    assert_eq!(names(&v, "SchemaName"), names(&via_entity, "SchemaName"));
    assert!(v["value"][0].get("@odata.type").is_none());

    let v = ok("RelationshipDefinitions(SchemaName='account_primary_contact')", &[]);
    assert_eq!(v["@odata.context"], format!("{API}/$metadata#RelationshipDefinitions/$entity"));
    assert_eq!(v["@odata.type"], "#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata");
    let id = v["MetadataId"].as_str().unwrap().to_string();
    let v = ok(&format!("RelationshipDefinitions({id})/Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata"), &[]);
    assert_eq!(v["ReferencingAttribute"], "primarycontactid");
    let m2m = ok("RelationshipDefinitions/Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata", &[]);
    assert_eq!(m2m["value"], json!([]));
    let e = err("RelationshipDefinitions(SchemaName='nope')", &[]);
    assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "0x80040217"));
}

#[test]
fn entity_keys() {
    let v = ok("EntityDefinitions(LogicalName='account')/Keys", &[]);
    assert_eq!(v["@odata.context"], format!("{API}/$metadata#EntityDefinitions('account')/Keys"));
    assert_eq!(v["value"][0]["LogicalName"], "accountnumber_key");
    assert_eq!(v["value"][0]["KeyAttributes"], json!(["accountnumber"]));
    let id = v["value"][0]["MetadataId"].as_str().unwrap().to_string();
    let one = ok(&format!("EntityDefinitions(LogicalName='account')/Keys({id})"), &[("$select", "KeyAttributes")]);
    assert_eq!(one["KeyAttributes"], json!(["accountnumber"]));
    let one = ok("EntityDefinitions(LogicalName='account')/Keys(LogicalName='accountnumber_key')", &[]);
    assert_eq!(one["EntityKeyIndexStatus"], "Active");
    assert_eq!(ok("EntityDefinitions(LogicalName='lead')/Keys", &[])["value"], json!([]));
}

#[test]
fn global_option_sets() {
    let v = ok("GlobalOptionSetDefinitions", &[]);
    assert_eq!(v, json!({"@odata.context": format!("{API}/$metadata#GlobalOptionSetDefinitions"), "value": []}));
    let e = err("GlobalOptionSetDefinitions(Name='incident_caseorigincode')", &[]);
    assert_eq!(e.status, StatusCode::NOT_FOUND);
    let e = err("GlobalOptionSetDefinitions", &[("$filter", "Name eq 'x'")]);
    assert_eq!(e.message, "The query parameter $filter is not supported");
    let e = err("GlobalOptionSetDefinitions", &[("$select", "Options")]);
    assert!(e.message.contains("OptionSetMetadataBase"));
}

// ---------------------------------------------------------------- errors

#[test]
fn not_found_errors() {
    let e = err("EntityDefinitions(LogicalName='nosuch')", &[]);
    assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "0x80040217"));
    assert!(e.message.contains("nosuch"));
    let e = err(&format!("EntityDefinitions({})", Uuid::nil()), &[]);
    assert_eq!(e.status, StatusCode::NOT_FOUND);
    let e = err("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='nosuch')", &[]);
    assert_eq!(e.status, StatusCode::NOT_FOUND);
    assert_eq!(
        e.message,
        "'account' entity doesn't contain attribute with Name = 'nosuch' and NameMapping = 'Logical'."
    );
    let e = err("EntityDefinitions(LogicalName='account')/Nope(1)", &[]);
    assert_eq!(e.code, "0x8006088a");
    let e = err("Definitions", &[]);
    assert_eq!(e.message, "Resource not found for the segment 'Definitions'.");
    let e = err("EntityDefinitions(LogicalName='account')/Keys(LogicalName='nope')", &[]);
    assert_eq!(e.status, StatusCode::NOT_FOUND);
}

#[test]
fn query_errors() {
    let e = err("EntityDefinitions", &[("$select", "LogicalName,Bogus")]);
    assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "0x80060888"));
    assert_eq!(e.message, "Could not find a property named 'Bogus' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.");
    let e = err("EntityDefinitions", &[("$expand", "Bogus")]);
    assert_eq!(e.message, "Could not find a property named 'Bogus' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.");
    for opt in ["$top", "$orderby", "$skip", "$search", "$count"] {
        let e = err("EntityDefinitions", &[(opt, "1")]);
        assert_eq!(e.message, format!("The query parameter {opt} is not supported"));
    }
    let e = err("EntityDefinitions", &[("$filter", "DisplayName/UserLocalizedLabel/Label eq 'Account'")]);
    assert_eq!(e.code, "0x80060888");
    let e = err("EntityDefinitions", &[("$filter", "OwnershipType eq 'Nope' or")]);
    assert!(e.message.starts_with("Syntax error"), "{}", e.message);
    let e = err("EntityDefinitions(LogicalName='account')", &[("$filter", "LogicalName eq 'x'")]);
    assert_eq!(e.code, "0x80060888");
    let e = err("EntityDefinitions(Name='account')", &[]);
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    let e = err("EntityDefinitions(LogicalName=account)", &[]);
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- consistency with the declared types

/// Every property the builders emit is declared on the item's type, and every declared
/// structural property is emitted (so `$select` and `$metadata` agree with the JSON).
#[test]
fn builders_match_declared_types() {
    let s = Schema::builtin();
    let check = |item: Item<'_>| {
        let t = ty(item.type_name());
        let json = item.full_json(&s);
        for k in json.keys().filter(|k| !k.starts_with('@')) {
            assert!(types::property_type(t, k).is_some(), "{}: {k} not declared", t.name);
        }
        for a in types::ancestry(t) {
            for (p, _) in a.props {
                assert!(json.contains_key(*p), "{}: declared {p} missing", t.name);
            }
        }
    };
    for t in &s.tables {
        check(Item::Entity(t));
        for c in &t.columns {
            check(Item::Attribute(t, c));
            if c.kind.has_options() || c.kind == AttrKind::Boolean {
                check(Item::OptionSet(t, c));
            }
        }
        for k in &t.keys {
            check(Item::Key(t, k));
        }
    }
    for r in &s.relationships {
        check(Item::Relationship(r));
    }
}
