//! `EntityMetadata` and `EntityKeyMetadata` JSON, plus the `Label` and managed-property shapes
//! every metadata object uses.

use super::object;
use crate::schema::{AlternateKey, Ownership, Table};
use serde_json::{Value, json};
use uuid::Uuid;

/// The language of every label (English, United States).
pub const LANGUAGE_CODE: i32 = 1033;

/// A stable id for a metadata item that has no id in the schema (labels, option sets, keys):
/// UUIDv5 over a name, so ids survive restarts like the schema's own ids.
pub fn stable_id(kind: &str, name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("d365-emulator:{kind}:{name}").as_bytes())
}

/// A `Label` complex value holding one English label; an empty text gives the empty label
/// (`LocalizedLabels: []`, `UserLocalizedLabel: null`) the service returns for missing texts.
pub fn label(text: &str, id_seed: &str, managed: bool) -> Value {
    if text.is_empty() {
        return json!({ "LocalizedLabels": [], "UserLocalizedLabel": null });
    }
    let localized = json!({
        "Label": text,
        "LanguageCode": LANGUAGE_CODE,
        "IsManaged": managed,
        "MetadataId": stable_id("label", id_seed),
        "HasChanged": null,
    });
    json!({ "LocalizedLabels": [localized.clone()], "UserLocalizedLabel": localized })
}

/// A `BooleanManagedProperty` complex value.
pub fn managed(value: bool, can_be_changed: bool, logical_name: &str) -> Value {
    json!({ "Value": value, "CanBeChanged": can_be_changed, "ManagedPropertyLogicalName": logical_name })
}

/// The solution version a component was "introduced" in: system components carry the platform
/// version, custom ones the version of the solution that added them.
pub fn introduced_version(custom: bool) -> &'static str {
    if custom { "1.0.0.0" } else { "5.0.0.0" }
}

fn collection_schema_name(t: &Table) -> String {
    // `Account` + `s`, `new_Widget` + `s`; otherwise capitalise the set name.
    match t.set_name.strip_prefix(&t.logical_name) {
        Some(suffix) => format!("{}{suffix}", t.schema_name),
        None => {
            let mut c = t.set_name.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
        }
    }
}

/// Tables whose records can be activity parties (email recipients).
fn is_activity_party(t: &Table) -> bool {
    matches!(t.logical_name.as_str(), "account" | "contact" | "lead" | "systemuser")
}

/// The `EntityMetadata` of `t`, without the collection-valued navigation properties
/// (`Attributes`, `Keys`, relationships), which only appear when expanded.
pub fn entity_json(t: &Table) -> Value {
    let custom = t.is_custom;
    let managed_item = !custom;
    let id = t.metadata_id.to_string();
    let user_owned = t.ownership == Ownership::UserOwned;
    let ownership = match t.ownership {
        Ownership::UserOwned => "UserOwned",
        Ownership::OrganizationOwned => "OrganizationOwned",
        Ownership::BusinessOwned => "BusinessOwned",
    };
    Value::Object(object! {
        "MetadataId": t.metadata_id,
        "HasChanged": Value::Null,
        "ActivityTypeMask": 0,
        "AutoCreateAccessTeams": false,
        "AutoRouteToOwnerQueue": false,
        "CanBeInCustomEntityAssociation": managed(true, false, "canbeincustomentityassociation"),
        "CanBeInManyToMany": managed(true, false, "canbeinmanytomany"),
        "CanBePrimaryEntityInRelationship": managed(true, false, "canbeprimaryentityinrelationship"),
        "CanBeRelatedEntityInRelationship": managed(true, false, "canberelatedentityinrelationship"),
        "CanChangeHierarchicalRelationship": managed(true, false, "canchangehierarchicalrelationship"),
        "CanChangeTrackingBeEnabled": managed(true, false, "canchangetrackingbeenabled"),
        "CanCreateAttributes": managed(true, false, "cancreateattributes"),
        "CanCreateCharts": managed(true, false, "cancreatecharts"),
        "CanCreateForms": managed(true, false, "cancreateforms"),
        "CanCreateViews": managed(true, false, "cancreateviews"),
        "CanEnableSyncToExternalSearchIndex": managed(true, false, "canenablesynctoexternalsearchindex"),
        "CanModifyAdditionalSettings": managed(true, custom, "canmodifyadditionalsettings"),
        "CanTriggerWorkflow": true,
        "ChangeTrackingEnabled": t.change_tracking,
        "CollectionSchemaName": collection_schema_name(t),
        "CreatedOn": Value::Null,
        "DataProviderId": Value::Null,
        "DataSourceId": Value::Null,
        "DaysSinceRecordLastModified": 0,
        "Description": label(&t.description, &format!("{id}:description"), managed_item),
        "DisplayCollectionName": label(&t.display_collection_name, &format!("{id}:displaycollectionname"), managed_item),
        "DisplayName": label(&t.display_name, &format!("{id}:displayname"), managed_item),
        "EnforceStateTransitions": false,
        "EntityColor": Value::Null,
        "EntityHelpUrl": Value::Null,
        "EntityHelpUrlEnabled": false,
        "EntitySetName": t.set_name,
        "ExternalCollectionName": Value::Null,
        "ExternalName": Value::Null,
        "HasActivities": user_owned,
        "HasEmailAddresses": t.columns.iter().any(|c| c.logical_name.starts_with("emailaddress")),
        "HasFeedback": false,
        "HasNotes": user_owned,
        "IconLargeName": Value::Null,
        "IconMediumName": Value::Null,
        "IconSmallName": Value::Null,
        "IconVectorName": Value::Null,
        "IntroducedVersion": introduced_version(custom),
        "IsActivity": false,
        "IsActivityParty": is_activity_party(t),
        "IsAIRUpdated": true,
        "IsAuditEnabled": managed(false, true, "canmodifyauditsettings"),
        "IsAvailableOffline": true,
        "IsBPFEntity": false,
        "IsBusinessProcessEnabled": user_owned,
        "IsChildEntity": false,
        "IsConnectionsEnabled": managed(user_owned, true, "canmodifyconnectionsettings"),
        "IsCustomEntity": custom,
        "IsCustomizable": managed(true, false, "iscustomizable"),
        "IsDocumentManagementEnabled": false,
        "IsDocumentRecommendationsEnabled": false,
        "IsDuplicateDetectionEnabled": managed(user_owned, true, "canmodifyduplicatedetectionsettings"),
        "IsEnabledForCharts": true,
        "IsEnabledForExternalChannels": false,
        "IsEnabledForTrace": false,
        "IsImportable": true,
        "IsInteractionCentricEnabled": false,
        "IsIntersect": false,
        "IsKnowledgeManagementEnabled": false,
        "IsLogicalEntity": false,
        "IsMailMergeEnabled": managed(user_owned, true, "canmodifymailmergesettings"),
        "IsManaged": managed_item,
        "IsMappable": managed(true, false, "ismappable"),
        "IsMSTeamsIntegrationEnabled": false,
        "IsOfflineInMobileClient": managed(false, true, "canmodifymobileclientoffline"),
        "IsOneNoteIntegrationEnabled": false,
        "IsOptimisticConcurrencyEnabled": true,
        "IsPrivate": false,
        "IsQuickCreateEnabled": user_owned,
        "IsReadingPaneEnabled": true,
        "IsReadOnlyInMobileClient": managed(false, true, "canmodifymobileclientreadonly"),
        "IsRenameable": managed(true, false, "isrenameable"),
        "IsRetrieveAuditEnabled": false,
        "IsRetrieveMultipleAuditEnabled": false,
        "IsSLAEnabled": false,
        "IsSolutionAware": false,
        "IsStateModelAware": t.column("statecode").is_some(),
        "IsValidForAdvancedFind": true,
        "IsValidForQueue": managed(false, true, "canmodifyqueuesettings"),
        "IsVisibleInMobile": managed(true, false, "canmodifymobilevisibility"),
        "IsVisibleInMobileClient": managed(true, false, "canmodifymobileclientvisibility"),
        "LogicalCollectionName": t.set_name,
        "LogicalName": t.logical_name,
        "MobileOfflineFilters": Value::Null,
        "ModifiedOn": Value::Null,
        "ObjectTypeCode": t.object_type_code,
        "OwnershipType": ownership,
        "PrimaryIdAttribute": t.primary_id,
        "PrimaryImageAttribute": Value::Null,
        "PrimaryNameAttribute": t.primary_name,
        "RecurrenceBaseEntityLogicalName": Value::Null,
        "ReportViewName": Value::Null,
        "SchemaName": t.schema_name,
        "SettingOf": Value::Null,
        "SyncToExternalSearchIndex": false,
        "TableType": "Standard",
        "UsesBusinessDataLabelTable": false,
    })
}

/// The `EntityKeyMetadata` of alternate key `k` of `t`.
pub fn key_json(t: &Table, k: &AlternateKey) -> Value {
    let seed = format!("{}.{}", t.logical_name, k.logical_name);
    let display: Vec<&str> =
        k.attributes.iter().map(|a| t.column(a).map_or(a.as_str(), |c| c.display_name.as_str())).collect();
    json!({
        "MetadataId": key_id(t, k),
        "HasChanged": null,
        "DisplayName": label(&display.join(", "), &format!("key:{seed}"), false),
        "EntityKeyIndexStatus": "Active",
        "EntityLogicalName": t.logical_name,
        "IntroducedVersion": "1.0.0.0",
        "IsCustomizable": managed(true, false, "iscustomizable"),
        "IsExportKey": false,
        "IsManaged": false,
        "IsSecondaryKey": false,
        "IsSynchronous": true,
        "KeyAttributes": k.attributes,
        "LogicalName": k.logical_name,
        "SchemaName": k.logical_name,
    })
}

/// The stable `MetadataId` of an alternate key.
pub fn key_id(t: &Table, k: &AlternateKey) -> Uuid {
    stable_id("key", &format!("{}.{}", t.logical_name, k.logical_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn account_entity_metadata() {
        let s = Schema::builtin();
        let a = entity_json(s.table("account").unwrap());
        assert_eq!(a["LogicalName"], "account");
        assert_eq!(a["SchemaName"], "Account");
        assert_eq!(a["EntitySetName"], "accounts");
        assert_eq!(a["LogicalCollectionName"], "accounts");
        assert_eq!(a["CollectionSchemaName"], "Accounts");
        assert_eq!(a["PrimaryIdAttribute"], "accountid");
        assert_eq!(a["PrimaryNameAttribute"], "name");
        assert_eq!(a["ObjectTypeCode"], 1);
        assert_eq!(a["OwnershipType"], "UserOwned");
        assert_eq!(a["IsActivity"], false);
        assert_eq!(a["IsIntersect"], false);
        assert_eq!(a["IsCustomEntity"], false);
        assert!(a["HasChanged"].is_null());
        assert_eq!(a["DisplayName"]["UserLocalizedLabel"]["Label"], "Account");
        assert_eq!(a["DisplayName"]["UserLocalizedLabel"]["LanguageCode"], 1033);
        assert_eq!(a["DisplayName"]["LocalizedLabels"][0]["Label"], "Account");
        assert_eq!(a["DisplayCollectionName"]["UserLocalizedLabel"]["Label"], "Accounts");
        assert_eq!(a["CanChangeTrackingBeEnabled"]["ManagedPropertyLogicalName"], "canchangetrackingbeenabled");
        let w = entity_json(s.table("new_widget").unwrap());
        assert_eq!(w["IsCustomEntity"], true);
        assert_eq!(w["CollectionSchemaName"], "new_Widgets");
        assert_eq!(entity_json(s.table("opportunity").unwrap())["CollectionSchemaName"], "Opportunities");
    }

    #[test]
    fn empty_label_shape() {
        assert_eq!(label("", "x", true), json!({"LocalizedLabels": [], "UserLocalizedLabel": null}));
    }

    #[test]
    fn key_metadata() {
        let s = Schema::builtin();
        let t = s.table("account").unwrap();
        let k = key_json(t, &t.keys[0]);
        assert_eq!(k["KeyAttributes"], json!(["accountnumber"]));
        assert_eq!(k["EntityKeyIndexStatus"], "Active");
        assert_eq!(k["EntityLogicalName"], "account");
        assert_eq!(k["MetadataId"], json!(key_id(t, &t.keys[0])));
    }
}
