//! `OneToManyRelationshipMetadata` JSON (used for both the 1:N and the N:1 views of a table).

use super::entity::{introduced_version, label, managed};
use crate::schema::{AttrKind, Relationship, Schema};
use serde_json::{Map, Value, json};

/// Tables whose lookups record ownership or audit facts rather than business links.
fn is_system_table(table: &str) -> bool {
    matches!(table, "systemuser" | "team" | "businessunit" | "transactioncurrency" | "organization")
}

/// The cascade behaviour: parental for customer lookups (deleting the account deletes its
/// contacts, as on the service), none for ownership/audit links, "remove link" otherwise.
fn cascade(schema: &Schema, r: &Relationship) -> Value {
    let kind = schema.table(&r.referencing_entity).and_then(|t| t.column(&r.referencing_attribute)).map(|c| c.kind);
    let (assign, delete, merge, reparent, share) = if kind == Some(AttrKind::Customer) {
        ("Cascade", "Cascade", "Cascade", "Cascade", "Cascade")
    } else if is_system_table(&r.referenced_entity) {
        ("NoCascade", "NoCascade", "NoCascade", "NoCascade", "NoCascade")
    } else {
        ("NoCascade", "RemoveLink", "NoCascade", "NoCascade", "NoCascade")
    };
    json!({
        "Assign": assign,
        "Delete": delete,
        "Archive": "NoCascade",
        "Merge": merge,
        "Reparent": reparent,
        "Share": share,
        "Unshare": share,
        "RollupView": "NoCascade",
    })
}

/// The full `OneToManyRelationshipMetadata` of `r`.
pub fn relationship_json(schema: &Schema, r: &Relationship) -> Map<String, Value> {
    let custom = r.is_custom;
    let parental = schema
        .table(&r.referencing_entity)
        .and_then(|t| t.column(&r.referencing_attribute))
        .is_some_and(|c| c.kind == AttrKind::Customer);
    // A table's own "parent" lookup (account.parentaccountid) makes a hierarchy.
    let hierarchical =
        r.referenced_entity == r.referencing_entity && r.referencing_attribute.starts_with("parent") && !parental;
    let security = if parental {
        "ParentChild"
    } else if is_system_table(&r.referenced_entity) {
        "None"
    } else {
        "Append"
    };
    let menu_label = schema.table(&r.referencing_entity).map_or("", |t| t.display_collection_name.as_str());
    let value = json!({
        "MetadataId": r.metadata_id,
        "HasChanged": null,
        "SchemaName": r.schema_name,
        "SecurityTypes": security,
        "IsCustomRelationship": custom,
        "IsValidForAdvancedFind": true,
        "RelationshipType": "OneToManyRelationship",
        "IntroducedVersion": introduced_version(custom),
        "IsCustomizable": managed(true, false, "iscustomizable"),
        "IsManaged": !custom,
        "AssociatedMenuConfiguration": {
            "Behavior": "UseCollectionName",
            "Group": "Details",
            "Label": label(menu_label, &format!("menu:{}", r.schema_name), !custom),
            "Order": 10000,
            "IsCustomizable": true,
            "Icon": null,
            "ViewId": "00000000-0000-0000-0000-000000000000",
            "AvailableOffline": true,
            "MenuId": null,
            "QueryApi": null,
        },
        "CascadeConfiguration": cascade(schema, r),
        "DenormalizedAttributeName": null,
        "EntityKey": null,
        "IsDenormalizedLookup": null,
        "IsHierarchical": hierarchical,
        "IsRelationshipAttributeDenormalized": false,
        "ReferencedAttribute": r.referenced_attribute,
        "ReferencedEntity": r.referenced_entity,
        "ReferencedEntityNavigationPropertyName": r.referenced_nav,
        "ReferencingAttribute": r.referencing_attribute,
        "ReferencingEntity": r.referencing_entity,
        "ReferencingEntityNavigationPropertyName": r.referencing_nav,
        "RelationshipAttributes": [],
        "RelationshipBehavior": if parental { 1 } else { 0 },
    });
    match value {
        Value::Object(m) => m,
        _ => unreachable!("json! object literal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_relationship() {
        let s = Schema::builtin();
        let r = s.relationships.iter().find(|r| r.schema_name == "contact_customer_accounts").unwrap();
        let j = relationship_json(&s, r);
        assert_eq!(j["ReferencedEntity"], "account");
        assert_eq!(j["ReferencedAttribute"], "accountid");
        assert_eq!(j["ReferencingEntity"], "contact");
        assert_eq!(j["ReferencingAttribute"], "parentcustomerid");
        assert_eq!(j["ReferencedEntityNavigationPropertyName"], "contact_customer_accounts");
        assert_eq!(j["ReferencingEntityNavigationPropertyName"], "parentcustomerid_account");
        assert_eq!(j["RelationshipType"], "OneToManyRelationship");
        assert_eq!(j["CascadeConfiguration"]["Delete"], "Cascade");
        assert_eq!(j["IsCustomRelationship"], false);
    }

    #[test]
    fn hierarchy_and_plain_lookup() {
        let s = Schema::builtin();
        let get = |n: &str| relationship_json(&s, s.relationships.iter().find(|r| r.schema_name == n).unwrap());
        assert_eq!(get("account_parent_account")["IsHierarchical"], true);
        let pc = get("account_primary_contact");
        assert_eq!(pc["IsHierarchical"], false);
        assert_eq!(pc["CascadeConfiguration"]["Delete"], "RemoveLink");
    }
}
