//! The metadata entity, complex and enum types of the `Microsoft.Dynamics.CRM` namespace that the
//! emulator exposes (`EntityMetadata`, `AttributeMetadata` and its derived types, relationships,
//! option sets, keys, labels and managed properties).
//!
//! One table drives three things so they cannot drift apart: the `$metadata` document
//! (`csdl.rs`), `$select`/`$filter` validation (which property exists on which type, and which
//! enum type an enum property has), and the unit tests that check every JSON object the builders
//! produce only carries properties its type declares.

/// `Edm.String`.
const S: &str = "Edm.String";
/// `Edm.Boolean`.
const B: &str = "Edm.Boolean";
/// `Edm.Int32`.
const I: &str = "Edm.Int32";
/// `Edm.Guid`.
const G: &str = "Edm.Guid";
/// `Edm.DateTimeOffset`.
const DTO: &str = "Edm.DateTimeOffset";
/// A `Label` complex value.
const LABEL: &str = "mscrm.Label";
/// A `BooleanManagedProperty` complex value.
const BMP: &str = "mscrm.BooleanManagedProperty";

/// An entity or complex type.
#[derive(Debug)]
pub struct MetaType {
    /// Type name inside the namespace.
    pub name: &'static str,
    /// Base type name, if any.
    pub base: Option<&'static str>,
    /// Abstract (cannot be cast to or instantiated).
    pub is_abstract: bool,
    /// Complex type (no key, no entity set).
    pub is_complex: bool,
    /// Structural properties `(name, type)`; types use the `mscrm.` alias.
    pub props: &'static [(&'static str, &'static str)],
    /// Navigation properties `(name, type)`.
    pub navs: &'static [(&'static str, &'static str)],
}

/// An enum type.
#[derive(Debug)]
pub struct EnumType {
    /// Type name inside the namespace.
    pub name: &'static str,
    /// Whether values combine as flags.
    pub flags: bool,
    /// Members and their values.
    pub members: &'static [(&'static str, i64)],
}

const fn entity(
    name: &'static str,
    base: Option<&'static str>,
    props: &'static [(&'static str, &'static str)],
    navs: &'static [(&'static str, &'static str)],
) -> MetaType {
    MetaType { name, base, is_abstract: false, is_complex: false, props, navs }
}

const fn abstract_entity(
    name: &'static str,
    base: Option<&'static str>,
    props: &'static [(&'static str, &'static str)],
    navs: &'static [(&'static str, &'static str)],
) -> MetaType {
    MetaType { name, base, is_abstract: true, is_complex: false, props, navs }
}

const fn complex(
    name: &'static str,
    base: Option<&'static str>,
    props: &'static [(&'static str, &'static str)],
) -> MetaType {
    MetaType { name, base, is_abstract: false, is_complex: true, props, navs: &[] }
}

const ATTR: Option<&str> = Some("AttributeMetadata");
const ENUM_ATTR: Option<&str> = Some("EnumAttributeMetadata");
const META: Option<&str> = Some("MetadataBase");

/// Every entity and complex type, base types before derived ones.
pub static TYPES: &[MetaType] = &[
    abstract_entity("MetadataBase", None, &[("MetadataId", G), ("HasChanged", B)], &[]),
    entity(
        "EntityMetadata",
        META,
        &[
            ("ActivityTypeMask", I),
            ("AutoCreateAccessTeams", B),
            ("AutoRouteToOwnerQueue", B),
            ("CanBeInCustomEntityAssociation", BMP),
            ("CanBeInManyToMany", BMP),
            ("CanBePrimaryEntityInRelationship", BMP),
            ("CanBeRelatedEntityInRelationship", BMP),
            ("CanChangeHierarchicalRelationship", BMP),
            ("CanChangeTrackingBeEnabled", BMP),
            ("CanCreateAttributes", BMP),
            ("CanCreateCharts", BMP),
            ("CanCreateForms", BMP),
            ("CanCreateViews", BMP),
            ("CanEnableSyncToExternalSearchIndex", BMP),
            ("CanModifyAdditionalSettings", BMP),
            ("CanTriggerWorkflow", B),
            ("ChangeTrackingEnabled", B),
            ("CollectionSchemaName", S),
            ("CreatedOn", DTO),
            ("DataProviderId", G),
            ("DataSourceId", G),
            ("DaysSinceRecordLastModified", I),
            ("Description", LABEL),
            ("DisplayCollectionName", LABEL),
            ("DisplayName", LABEL),
            ("EnforceStateTransitions", B),
            ("EntityColor", S),
            ("EntityHelpUrl", S),
            ("EntityHelpUrlEnabled", B),
            ("EntitySetName", S),
            ("ExternalCollectionName", S),
            ("ExternalName", S),
            ("HasActivities", B),
            ("HasEmailAddresses", B),
            ("HasFeedback", B),
            ("HasNotes", B),
            ("IconLargeName", S),
            ("IconMediumName", S),
            ("IconSmallName", S),
            ("IconVectorName", S),
            ("IntroducedVersion", S),
            ("IsActivity", B),
            ("IsActivityParty", B),
            ("IsAIRUpdated", B),
            ("IsAuditEnabled", BMP),
            ("IsAvailableOffline", B),
            ("IsBPFEntity", B),
            ("IsBusinessProcessEnabled", B),
            ("IsChildEntity", B),
            ("IsConnectionsEnabled", BMP),
            ("IsCustomEntity", B),
            ("IsCustomizable", BMP),
            ("IsDocumentManagementEnabled", B),
            ("IsDocumentRecommendationsEnabled", B),
            ("IsDuplicateDetectionEnabled", BMP),
            ("IsEnabledForCharts", B),
            ("IsEnabledForExternalChannels", B),
            ("IsEnabledForTrace", B),
            ("IsImportable", B),
            ("IsInteractionCentricEnabled", B),
            ("IsIntersect", B),
            ("IsKnowledgeManagementEnabled", B),
            ("IsLogicalEntity", B),
            ("IsMailMergeEnabled", BMP),
            ("IsManaged", B),
            ("IsMappable", BMP),
            ("IsMSTeamsIntegrationEnabled", B),
            ("IsOfflineInMobileClient", BMP),
            ("IsOneNoteIntegrationEnabled", B),
            ("IsOptimisticConcurrencyEnabled", B),
            ("IsPrivate", B),
            ("IsQuickCreateEnabled", B),
            ("IsReadingPaneEnabled", B),
            ("IsReadOnlyInMobileClient", BMP),
            ("IsRenameable", BMP),
            ("IsRetrieveAuditEnabled", B),
            ("IsRetrieveMultipleAuditEnabled", B),
            ("IsSLAEnabled", B),
            ("IsSolutionAware", B),
            ("IsStateModelAware", B),
            ("IsValidForAdvancedFind", B),
            ("IsValidForQueue", BMP),
            ("IsVisibleInMobile", BMP),
            ("IsVisibleInMobileClient", BMP),
            ("LogicalCollectionName", S),
            ("LogicalName", S),
            ("MobileOfflineFilters", S),
            ("ModifiedOn", DTO),
            ("ObjectTypeCode", I),
            ("OwnershipType", "mscrm.OwnershipTypes"),
            ("PrimaryIdAttribute", S),
            ("PrimaryImageAttribute", S),
            ("PrimaryNameAttribute", S),
            ("RecurrenceBaseEntityLogicalName", S),
            ("ReportViewName", S),
            ("SchemaName", S),
            ("SettingOf", S),
            ("SyncToExternalSearchIndex", B),
            ("TableType", S),
            ("UsesBusinessDataLabelTable", B),
        ],
        &[
            ("Attributes", "Collection(mscrm.AttributeMetadata)"),
            ("Keys", "Collection(mscrm.EntityKeyMetadata)"),
            ("ManyToManyRelationships", "Collection(mscrm.ManyToManyRelationshipMetadata)"),
            ("ManyToOneRelationships", "Collection(mscrm.OneToManyRelationshipMetadata)"),
            ("OneToManyRelationships", "Collection(mscrm.OneToManyRelationshipMetadata)"),
        ],
    ),
    entity(
        "AttributeMetadata",
        META,
        &[
            ("AttributeOf", S),
            ("AttributeType", "mscrm.AttributeTypeCode"),
            ("AttributeTypeName", "mscrm.AttributeTypeDisplayName"),
            ("AutoNumberFormat", S),
            ("CanBeSecuredForCreate", B),
            ("CanBeSecuredForRead", B),
            ("CanBeSecuredForUpdate", B),
            ("CanModifyAdditionalSettings", BMP),
            ("ColumnNumber", I),
            ("CreatedOn", DTO),
            ("DeprecatedVersion", S),
            ("Description", LABEL),
            ("DisplayName", LABEL),
            ("EntityLogicalName", S),
            ("ExternalName", S),
            ("InheritsFrom", S),
            ("IntroducedVersion", S),
            ("IsAuditEnabled", BMP),
            ("IsCustomAttribute", B),
            ("IsCustomizable", BMP),
            ("IsDataSourceSecret", B),
            ("IsFilterable", B),
            ("IsGlobalFilterEnabled", BMP),
            ("IsLogical", B),
            ("IsManaged", B),
            ("IsPrimaryId", B),
            ("IsPrimaryName", B),
            ("IsRenameable", BMP),
            ("IsRequiredForForm", B),
            ("IsRetrievable", B),
            ("IsSearchable", B),
            ("IsSecured", B),
            ("IsSortableEnabled", BMP),
            ("IsValidForAdvancedFind", BMP),
            ("IsValidForCreate", B),
            ("IsValidForForm", B),
            ("IsValidForGrid", B),
            ("IsValidForRead", B),
            ("IsValidForUpdate", B),
            ("IsValidODataAttribute", B),
            ("LinkedAttributeId", G),
            ("LogicalName", S),
            ("ModifiedOn", DTO),
            ("RequiredLevel", "mscrm.AttributeRequiredLevelManagedProperty"),
            ("SchemaName", S),
            ("SourceType", I),
        ],
        &[],
    ),
    entity(
        "StringAttributeMetadata",
        ATTR,
        &[
            ("DatabaseLength", I),
            ("Format", "mscrm.StringFormat"),
            ("FormatName", "mscrm.StringFormatName"),
            ("FormulaDefinition", S),
            ("ImeMode", "mscrm.ImeMode"),
            ("IsLocalizable", B),
            ("MaxLength", I),
            ("SourceTypeMask", I),
            ("YomiOf", S),
        ],
        &[],
    ),
    entity(
        "MemoAttributeMetadata",
        ATTR,
        &[
            ("DatabaseLength", I),
            ("Format", "mscrm.StringFormat"),
            ("FormatName", "mscrm.MemoFormatName"),
            ("ImeMode", "mscrm.ImeMode"),
            ("IsLocalizable", B),
            ("MaxLength", I),
        ],
        &[],
    ),
    entity(
        "IntegerAttributeMetadata",
        ATTR,
        &[
            ("Format", "mscrm.IntegerFormat"),
            ("FormulaDefinition", S),
            ("MaxValue", I),
            ("MinValue", I),
            ("SourceTypeMask", I),
        ],
        &[],
    ),
    entity("BigIntAttributeMetadata", ATTR, &[("MaxValue", "Edm.Int64"), ("MinValue", "Edm.Int64")], &[]),
    entity(
        "DecimalAttributeMetadata",
        ATTR,
        &[
            ("FormulaDefinition", S),
            ("ImeMode", "mscrm.ImeMode"),
            ("MaxValue", "Edm.Decimal"),
            ("MinValue", "Edm.Decimal"),
            ("Precision", I),
            ("SourceTypeMask", I),
        ],
        &[],
    ),
    entity(
        "DoubleAttributeMetadata",
        ATTR,
        &[("ImeMode", "mscrm.ImeMode"), ("MaxValue", "Edm.Double"), ("MinValue", "Edm.Double"), ("Precision", I)],
        &[],
    ),
    entity(
        "MoneyAttributeMetadata",
        ATTR,
        &[
            ("CalculationOf", S),
            ("FormulaDefinition", S),
            ("ImeMode", "mscrm.ImeMode"),
            ("IsBaseCurrency", B),
            ("MaxValue", "Edm.Double"),
            ("MinValue", "Edm.Double"),
            ("Precision", I),
            ("PrecisionSource", I),
            ("SourceTypeMask", I),
        ],
        &[],
    ),
    entity(
        "BooleanAttributeMetadata",
        ATTR,
        &[("DefaultValue", B), ("FormulaDefinition", S), ("SourceTypeMask", I)],
        &[("GlobalOptionSet", "mscrm.BooleanOptionSetMetadata"), ("OptionSet", "mscrm.BooleanOptionSetMetadata")],
    ),
    entity(
        "DateTimeAttributeMetadata",
        ATTR,
        &[
            ("CanChangeDateTimeBehavior", BMP),
            ("DateTimeBehavior", "mscrm.DateTimeBehavior"),
            ("Format", "mscrm.DateTimeFormat"),
            ("FormulaDefinition", S),
            ("ImeMode", "mscrm.ImeMode"),
            ("MaxSupportedValue", DTO),
            ("MinSupportedValue", DTO),
            ("SourceTypeMask", I),
        ],
        &[],
    ),
    entity("UniqueIdentifierAttributeMetadata", ATTR, &[], &[]),
    entity(
        "LookupAttributeMetadata",
        ATTR,
        &[("Format", "mscrm.LookupFormat"), ("Targets", "Collection(Edm.String)")],
        &[],
    ),
    abstract_entity(
        "EnumAttributeMetadata",
        ATTR,
        &[("DefaultFormValue", I)],
        &[("GlobalOptionSet", "mscrm.OptionSetMetadata"), ("OptionSet", "mscrm.OptionSetMetadata")],
    ),
    entity(
        "PicklistAttributeMetadata",
        ENUM_ATTR,
        &[
            ("ChildPicklistLogicalNames", "Collection(Edm.String)"),
            ("FormulaDefinition", S),
            ("ParentPicklistLogicalName", S),
            ("SourceTypeMask", I),
        ],
        &[],
    ),
    entity("StateAttributeMetadata", ENUM_ATTR, &[], &[]),
    entity("StatusAttributeMetadata", ENUM_ATTR, &[], &[]),
    entity(
        "MultiSelectPicklistAttributeMetadata",
        ENUM_ATTR,
        &[
            ("ChildPicklistLogicalNames", "Collection(Edm.String)"),
            ("FormulaDefinition", S),
            ("ParentPicklistLogicalName", S),
            ("SourceTypeMask", I),
        ],
        &[],
    ),
    entity(
        "EntityKeyMetadata",
        META,
        &[
            ("DisplayName", LABEL),
            ("EntityKeyIndexStatus", "mscrm.EntityKeyIndexStatus"),
            ("EntityLogicalName", S),
            ("IntroducedVersion", S),
            ("IsCustomizable", BMP),
            ("IsExportKey", B),
            ("IsManaged", B),
            ("IsSecondaryKey", B),
            ("IsSynchronous", B),
            ("KeyAttributes", "Collection(Edm.String)"),
            ("LogicalName", S),
            ("SchemaName", S),
        ],
        &[],
    ),
    abstract_entity(
        "RelationshipMetadataBase",
        META,
        &[
            ("IntroducedVersion", S),
            ("IsCustomizable", BMP),
            ("IsCustomRelationship", B),
            ("IsManaged", B),
            ("IsValidForAdvancedFind", B),
            ("RelationshipType", "mscrm.RelationshipType"),
            ("SchemaName", S),
            ("SecurityTypes", "mscrm.SecurityTypes"),
        ],
        &[],
    ),
    entity(
        "OneToManyRelationshipMetadata",
        Some("RelationshipMetadataBase"),
        &[
            ("AssociatedMenuConfiguration", "mscrm.AssociatedMenuConfiguration"),
            ("CascadeConfiguration", "mscrm.CascadeConfiguration"),
            ("DenormalizedAttributeName", S),
            ("EntityKey", S),
            ("IsDenormalizedLookup", B),
            ("IsHierarchical", B),
            ("IsRelationshipAttributeDenormalized", B),
            ("ReferencedAttribute", S),
            ("ReferencedEntity", S),
            ("ReferencedEntityNavigationPropertyName", S),
            ("ReferencingAttribute", S),
            ("ReferencingEntity", S),
            ("ReferencingEntityNavigationPropertyName", S),
            ("RelationshipAttributes", "Collection(mscrm.RelationshipAttribute)"),
            ("RelationshipBehavior", I),
        ],
        &[],
    ),
    entity(
        "ManyToManyRelationshipMetadata",
        Some("RelationshipMetadataBase"),
        &[
            ("Entity1AssociatedMenuConfiguration", "mscrm.AssociatedMenuConfiguration"),
            ("Entity1IntersectAttribute", S),
            ("Entity1LogicalName", S),
            ("Entity1NavigationPropertyName", S),
            ("Entity2AssociatedMenuConfiguration", "mscrm.AssociatedMenuConfiguration"),
            ("Entity2IntersectAttribute", S),
            ("Entity2LogicalName", S),
            ("Entity2NavigationPropertyName", S),
            ("IntersectEntityName", S),
        ],
        &[],
    ),
    abstract_entity(
        "OptionSetMetadataBase",
        META,
        &[
            ("Description", LABEL),
            ("DisplayName", LABEL),
            ("ExternalTypeName", S),
            ("IntroducedVersion", S),
            ("IsCustomizable", BMP),
            ("IsCustomOptionSet", B),
            ("IsGlobal", B),
            ("IsManaged", B),
            ("Name", S),
            ("OptionSetType", "mscrm.OptionSetType"),
            ("ParentOptionSetName", S),
        ],
        &[],
    ),
    entity("OptionSetMetadata", Some("OptionSetMetadataBase"), &[("Options", "Collection(mscrm.OptionMetadata)")], &[]),
    entity(
        "BooleanOptionSetMetadata",
        Some("OptionSetMetadataBase"),
        &[("FalseOption", "mscrm.OptionMetadata"), ("TrueOption", "mscrm.OptionMetadata")],
        &[],
    ),
    complex(
        "Label",
        None,
        &[("LocalizedLabels", "Collection(mscrm.LocalizedLabel)"), ("UserLocalizedLabel", "mscrm.LocalizedLabel")],
    ),
    complex(
        "LocalizedLabel",
        None,
        &[("Label", S), ("LanguageCode", I), ("IsManaged", B), ("MetadataId", G), ("HasChanged", B)],
    ),
    complex("BooleanManagedProperty", None, &[("Value", B), ("CanBeChanged", B), ("ManagedPropertyLogicalName", S)]),
    complex(
        "AttributeRequiredLevelManagedProperty",
        None,
        &[("Value", "mscrm.AttributeRequiredLevel"), ("CanBeChanged", B), ("ManagedPropertyLogicalName", S)],
    ),
    complex("AttributeTypeDisplayName", None, &[("Value", S)]),
    complex("StringFormatName", None, &[("Value", S)]),
    complex("MemoFormatName", None, &[("Value", S)]),
    complex("DateTimeBehavior", None, &[("Value", S)]),
    complex(
        "OptionMetadata",
        None,
        &[
            ("Value", I),
            ("Color", S),
            ("IsManaged", B),
            ("ExternalValue", S),
            ("ParentValues", "Collection(Edm.Int32)"),
            ("Tag", S),
            ("IsHidden", B),
            ("MetadataId", G),
            ("HasChanged", B),
            ("Label", LABEL),
            ("Description", LABEL),
        ],
    ),
    complex("StatusOptionMetadata", Some("OptionMetadata"), &[("State", I), ("TransitionData", S)]),
    complex("StateOptionMetadata", Some("OptionMetadata"), &[("DefaultStatus", I), ("InvariantName", S)]),
    complex(
        "CascadeConfiguration",
        None,
        &[
            ("Assign", "mscrm.CascadeType"),
            ("Delete", "mscrm.CascadeType"),
            ("Archive", "mscrm.CascadeType"),
            ("Merge", "mscrm.CascadeType"),
            ("Reparent", "mscrm.CascadeType"),
            ("Share", "mscrm.CascadeType"),
            ("Unshare", "mscrm.CascadeType"),
            ("RollupView", "mscrm.CascadeType"),
        ],
    ),
    complex(
        "AssociatedMenuConfiguration",
        None,
        &[
            ("Behavior", "mscrm.AssociatedMenuBehavior"),
            ("Group", "mscrm.AssociatedMenuGroup"),
            ("Label", LABEL),
            ("Order", I),
            ("IsCustomizable", B),
            ("Icon", S),
            ("ViewId", G),
            ("AvailableOffline", B),
            ("MenuId", S),
            ("QueryApi", S),
        ],
    ),
    complex("RelationshipAttribute", None, &[("ReferencedAttributeName", S), ("ReferencingAttributeName", S)]),
    complex("WhoAmIResponse", None, &[("BusinessUnitId", G), ("UserId", G), ("OrganizationId", G)]),
    complex(
        "EntityRecordCountCollection",
        None,
        &[("Count", I), ("IsReadOnly", B), ("Keys", "Collection(Edm.String)"), ("Values", "Collection(Edm.Int64)")],
    ),
    complex(
        "RetrieveTotalRecordCountResponse",
        None,
        &[("EntityRecordCountCollection", "mscrm.EntityRecordCountCollection")],
    ),
];

/// Every enum type used by the metadata types.
pub static ENUMS: &[EnumType] = &[
    EnumType {
        name: "OwnershipTypes",
        flags: true,
        members: &[
            ("None", 0),
            ("UserOwned", 1),
            ("TeamOwned", 2),
            ("BusinessOwned", 4),
            ("OrganizationOwned", 8),
            ("BusinessParented", 16),
        ],
    },
    EnumType {
        name: "AttributeTypeCode",
        flags: false,
        members: &[
            ("Boolean", 0),
            ("Customer", 1),
            ("DateTime", 2),
            ("Decimal", 3),
            ("Double", 4),
            ("Integer", 5),
            ("Lookup", 6),
            ("Memo", 7),
            ("Money", 8),
            ("Owner", 9),
            ("PartyList", 10),
            ("Picklist", 11),
            ("State", 12),
            ("Status", 13),
            ("String", 14),
            ("Uniqueidentifier", 15),
            ("CalendarRules", 16),
            ("Virtual", 17),
            ("BigInt", 18),
            ("ManagedProperty", 19),
            ("EntityName", 20),
        ],
    },
    EnumType {
        name: "AttributeRequiredLevel",
        flags: false,
        members: &[("None", 0), ("SystemRequired", 1), ("ApplicationRequired", 2), ("Recommended", 3)],
    },
    EnumType {
        name: "EntityKeyIndexStatus",
        flags: false,
        members: &[("Pending", 0), ("InProgress", 1), ("Active", 2), ("Failed", 3)],
    },
    EnumType {
        name: "RelationshipType",
        flags: false,
        members: &[("OneToManyRelationship", 0), ("ManyToManyRelationship", 1)],
    },
    EnumType {
        name: "SecurityTypes",
        flags: true,
        members: &[("None", 0), ("Append", 1), ("ParentChild", 2), ("Pointer", 4), ("Inheritance", 8)],
    },
    EnumType {
        name: "OptionSetType",
        flags: false,
        members: &[("Picklist", 0), ("State", 1), ("Status", 2), ("Boolean", 3)],
    },
    EnumType {
        name: "CascadeType",
        flags: false,
        members: &[
            ("NoCascade", 0),
            ("Cascade", 1),
            ("Active", 2),
            ("UserOwned", 3),
            ("RemoveLink", 4),
            ("Restrict", 5),
        ],
    },
    EnumType {
        name: "StringFormat",
        flags: false,
        members: &[
            ("Email", 0),
            ("Text", 1),
            ("TextArea", 2),
            ("Url", 3),
            ("TickerSymbol", 4),
            ("PhoneticGuide", 5),
            ("VersionNumber", 6),
            ("Phone", 7),
            ("Json", 8),
            ("RichText", 9),
        ],
    },
    EnumType {
        name: "IntegerFormat",
        flags: false,
        members: &[("None", 0), ("Duration", 1), ("TimeZone", 2), ("Language", 3), ("Locale", 4)],
    },
    EnumType { name: "DateTimeFormat", flags: false, members: &[("DateOnly", 0), ("DateAndTime", 1)] },
    EnumType {
        name: "LookupFormat",
        flags: false,
        members: &[("None", 0), ("Connection", 1), ("Regarding", 2), ("Text", 3)],
    },
    EnumType {
        name: "ImeMode",
        flags: false,
        members: &[("Auto", 0), ("Inactive", 1), ("Active", 2), ("Disabled", 3)],
    },
    EnumType {
        name: "AssociatedMenuBehavior",
        flags: false,
        members: &[("UseCollectionName", 0), ("UseLabel", 1), ("DoNotDisplay", 2)],
    },
    EnumType {
        name: "AssociatedMenuGroup",
        flags: false,
        members: &[("Details", 0), ("Sales", 1), ("Service", 2), ("Marketing", 3)],
    },
];

/// The type named `name` (without namespace).
pub fn meta_type(name: &str) -> Option<&'static MetaType> {
    TYPES.iter().find(|t| t.name == name)
}

/// The enum type named `name` (without namespace).
pub fn enum_type(name: &str) -> Option<&'static EnumType> {
    ENUMS.iter().find(|e| e.name == name)
}

/// `ty` and its base types, most derived first.
pub fn ancestry(ty: &'static MetaType) -> impl Iterator<Item = &'static MetaType> {
    std::iter::successors(Some(ty), |t| t.base.and_then(meta_type))
}

/// The type of structural property `prop` on `ty` (inherited ones included).
pub fn property_type(ty: &'static MetaType, prop: &str) -> Option<&'static str> {
    ancestry(ty).find_map(|t| t.props.iter().find(|(n, _)| *n == prop).map(|(_, ty)| *ty))
}

/// The type of navigation property `nav` on `ty` (inherited ones included).
pub fn navigation_type(ty: &'static MetaType, nav: &str) -> Option<&'static str> {
    ancestry(ty).find_map(|t| t.navs.iter().find(|(n, _)| *n == nav).map(|(_, ty)| *ty))
}

/// Whether `ty` is `base` or derives from it.
pub fn derives_from(ty: &'static MetaType, base: &str) -> bool {
    ancestry(ty).any(|t| t.name == base)
}

/// The enum type behind a property type such as `mscrm.OwnershipTypes`.
pub fn enum_of(prop_type: &str) -> Option<&'static EnumType> {
    prop_type.strip_prefix("mscrm.").and_then(enum_type)
}

/// The complex type behind a property type such as `mscrm.BooleanManagedProperty`.
pub fn complex_of(prop_type: &str) -> Option<&'static MetaType> {
    prop_type.strip_prefix("mscrm.").and_then(meta_type).filter(|t| t.is_complex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_type_exists() {
        let known = |ty: &str| {
            let inner = ty.strip_prefix("Collection(").and_then(|t| t.strip_suffix(')')).unwrap_or(ty);
            inner.starts_with("Edm.")
                || inner.strip_prefix("mscrm.").is_some_and(|n| meta_type(n).is_some() || enum_type(n).is_some())
        };
        for t in TYPES {
            if let Some(b) = t.base {
                assert!(meta_type(b).is_some(), "{}: unknown base {b}", t.name);
            }
            for (n, ty) in t.props.iter().chain(t.navs) {
                assert!(known(ty), "{}.{n}: unknown type {ty}", t.name);
            }
        }
        let mut names: Vec<_> = TYPES.iter().map(|t| t.name).chain(ENUMS.iter().map(|e| e.name)).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "type names are unique");
    }

    #[test]
    fn lookups_walk_base_types() {
        let pick = meta_type("PicklistAttributeMetadata").unwrap();
        assert_eq!(property_type(pick, "LogicalName"), Some("Edm.String"));
        assert_eq!(property_type(pick, "MetadataId"), Some("Edm.Guid"));
        assert_eq!(navigation_type(pick, "OptionSet"), Some("mscrm.OptionSetMetadata"));
        assert!(derives_from(pick, "AttributeMetadata"));
        assert!(property_type(meta_type("AttributeMetadata").unwrap(), "MaxLength").is_none());
        assert_eq!(enum_of("mscrm.OwnershipTypes").unwrap().members[1].0, "UserOwned");
        assert!(complex_of("mscrm.BooleanManagedProperty").is_some());
    }
}
