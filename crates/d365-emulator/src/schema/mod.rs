//! Table definitions of the emulated Dataverse environment: the one source from which the
//! SQLite schema, `EntityDefinitions`, `$metadata` (CSDL), query validation, formatted
//! values and write validation are all derived.

mod builder;
pub mod custom;
pub mod messages;
pub mod platform_tables;
mod tables;

use std::collections::HashMap;
use uuid::Uuid;

/// Dataverse attribute types (`AttributeTypeName` values, minus the ones not emulated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrKind {
    /// Single line of text.
    String,
    /// Multiple lines of text.
    Memo,
    /// Whole number (Int32).
    Integer,
    /// Int64.
    BigInt,
    /// Fixed-point decimal.
    Decimal,
    /// Floating point.
    Double,
    /// Currency.
    Money,
    /// Yes/No.
    Boolean,
    /// Date and time (UTC instant).
    DateTime,
    /// Date only.
    DateOnly,
    /// GUID column (primary keys included).
    Uniqueidentifier,
    /// Lookup to one table.
    Lookup,
    /// Lookup to account or contact.
    Customer,
    /// Lookup to systemuser or team.
    Owner,
    /// Choice.
    Picklist,
    /// Status (statecode).
    State,
    /// Status reason (statuscode).
    Status,
    /// Choices (multi-select).
    MultiSelectPicklist,
}

impl AttrKind {
    /// The `AttributeType` enum value (AttributeTypeCode).
    pub fn attribute_type(self) -> &'static str {
        match self {
            AttrKind::String => "String",
            AttrKind::Memo => "Memo",
            AttrKind::Integer => "Integer",
            AttrKind::BigInt => "BigInt",
            AttrKind::Decimal => "Decimal",
            AttrKind::Double => "Double",
            AttrKind::Money => "Money",
            AttrKind::Boolean => "Boolean",
            AttrKind::DateTime | AttrKind::DateOnly => "DateTime",
            AttrKind::Uniqueidentifier => "Uniqueidentifier",
            AttrKind::Lookup => "Lookup",
            AttrKind::Customer => "Customer",
            AttrKind::Owner => "Owner",
            AttrKind::Picklist => "Picklist",
            AttrKind::State => "State",
            AttrKind::Status => "Status",
            AttrKind::MultiSelectPicklist => "Virtual",
        }
    }

    /// The `AttributeTypeName.Value` (finer type name).
    pub fn attribute_type_name(self) -> &'static str {
        match self {
            AttrKind::String => "StringType",
            AttrKind::Memo => "MemoType",
            AttrKind::Integer => "IntegerType",
            AttrKind::BigInt => "BigIntType",
            AttrKind::Decimal => "DecimalType",
            AttrKind::Double => "DoubleType",
            AttrKind::Money => "MoneyType",
            AttrKind::Boolean => "BooleanType",
            AttrKind::DateTime | AttrKind::DateOnly => "DateTimeType",
            AttrKind::Uniqueidentifier => "UniqueidentifierType",
            AttrKind::Lookup => "LookupType",
            AttrKind::Customer => "CustomerType",
            AttrKind::Owner => "OwnerType",
            AttrKind::Picklist => "PicklistType",
            AttrKind::State => "StateType",
            AttrKind::Status => "StatusType",
            AttrKind::MultiSelectPicklist => "MultiSelectPicklistType",
        }
    }

    /// The derived metadata type (`Microsoft.Dynamics.CRM.<this>`).
    pub fn metadata_type(self) -> &'static str {
        match self {
            AttrKind::String => "StringAttributeMetadata",
            AttrKind::Memo => "MemoAttributeMetadata",
            AttrKind::Integer => "IntegerAttributeMetadata",
            AttrKind::BigInt => "BigIntAttributeMetadata",
            AttrKind::Decimal => "DecimalAttributeMetadata",
            AttrKind::Double => "DoubleAttributeMetadata",
            AttrKind::Money => "MoneyAttributeMetadata",
            AttrKind::Boolean => "BooleanAttributeMetadata",
            AttrKind::DateTime | AttrKind::DateOnly => "DateTimeAttributeMetadata",
            AttrKind::Uniqueidentifier => "UniqueIdentifierAttributeMetadata",
            AttrKind::Lookup | AttrKind::Customer | AttrKind::Owner => "LookupAttributeMetadata",
            AttrKind::Picklist => "PicklistAttributeMetadata",
            AttrKind::State => "StateAttributeMetadata",
            AttrKind::Status => "StatusAttributeMetadata",
            AttrKind::MultiSelectPicklist => "MultiSelectPicklistAttributeMetadata",
        }
    }

    /// The EDM type of the property in `$metadata` and JSON.
    pub fn edm_type(self) -> &'static str {
        match self {
            AttrKind::String | AttrKind::Memo | AttrKind::MultiSelectPicklist => "Edm.String",
            AttrKind::Integer | AttrKind::Picklist | AttrKind::State | AttrKind::Status => "Edm.Int32",
            AttrKind::BigInt => "Edm.Int64",
            AttrKind::Decimal | AttrKind::Money => "Edm.Decimal",
            AttrKind::Double => "Edm.Double",
            AttrKind::Boolean => "Edm.Boolean",
            AttrKind::DateTime => "Edm.DateTimeOffset",
            AttrKind::DateOnly => "Edm.Date",
            AttrKind::Uniqueidentifier | AttrKind::Lookup | AttrKind::Customer | AttrKind::Owner => "Edm.Guid",
        }
    }

    /// Whether the column is a lookup (exposed as `_x_value`).
    pub fn is_lookup(self) -> bool {
        matches!(self, AttrKind::Lookup | AttrKind::Customer | AttrKind::Owner)
    }

    /// Whether the column has an option set.
    pub fn has_options(self) -> bool {
        matches!(self, AttrKind::Picklist | AttrKind::State | AttrKind::Status | AttrKind::MultiSelectPicklist)
    }
}

/// `RequiredLevel.Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RequiredLevel {
    /// Optional.
    None,
    /// Required by the platform.
    SystemRequired,
    /// Required by the app (business required).
    ApplicationRequired,
    /// Recommended.
    Recommended,
}

impl RequiredLevel {
    /// The metadata enum text.
    pub fn as_str(self) -> &'static str {
        match self {
            RequiredLevel::None => "None",
            RequiredLevel::SystemRequired => "SystemRequired",
            RequiredLevel::ApplicationRequired => "ApplicationRequired",
            RequiredLevel::Recommended => "Recommended",
        }
    }
}

/// One choice option.
#[derive(Debug, Clone)]
pub struct OptionDef {
    /// The stored integer.
    pub value: i32,
    /// The English label.
    pub label: String,
    /// For status options: the statecode this status belongs to.
    pub state: Option<i32>,
    /// For state options: the default statuscode.
    pub default_status: Option<i32>,
    /// For state options: the invariant name (`Active`, `Inactive`, ...).
    pub invariant_name: Option<String>,
}

/// One column (attribute).
#[derive(Debug, Clone)]
pub struct Column {
    /// Logical name (lower case).
    pub logical_name: String,
    /// Schema name.
    pub schema_name: String,
    /// Display label.
    pub display_name: String,
    /// Description label (empty for the built-in columns).
    pub description: String,
    /// Type.
    pub kind: AttrKind,
    /// Requirement level.
    pub required: RequiredLevel,
    /// Whether the column is the primary key.
    pub is_primary_id: bool,
    /// Whether the column is the primary name.
    pub is_primary_name: bool,
    /// Whether it can be set on create.
    pub valid_for_create: bool,
    /// Whether it can be set on update.
    pub valid_for_update: bool,
    /// Whether it is a custom column.
    pub is_custom: bool,
    /// String/Memo maximum length.
    pub max_length: Option<u32>,
    /// Decimal/Double/Money precision (digits after the point).
    pub precision: Option<u32>,
    /// Numeric bounds.
    pub min_value: Option<f64>,
    /// Numeric bounds.
    pub max_value: Option<f64>,
    /// Lookup target tables.
    pub targets: Vec<String>,
    /// For lookups: one relationship per target.
    pub lookup_navs: Vec<LookupNav>,
    /// Choice options, or the Boolean's (false, true) labels as values 0 and 1.
    pub options: Vec<OptionDef>,
    /// Option set name.
    pub option_set_name: Option<String>,
    /// DateTime behaviour: `UserLocal`, `DateOnly` or `TimeZoneIndependent`.
    pub datetime_behavior: Option<&'static str>,
    /// The `Format` its creator chose (String, Memo and DateTime columns); `None` derives it from
    /// the type and, for text, the column name.
    pub format: Option<&'static str>,
    /// Stable metadata id.
    pub metadata_id: Uuid,
    /// Column order number.
    pub column_number: u32,
}

impl Column {
    /// The property name in Web API JSON (`_x_value` for lookups).
    pub fn property_name(&self) -> String {
        if self.kind.is_lookup() { format!("_{}_value", self.logical_name) } else { self.logical_name.clone() }
    }

    /// The label of option `value`.
    pub fn option_label(&self, value: i32) -> Option<&str> {
        self.options.iter().find(|o| o.value == value).map(|o| o.label.as_str())
    }

    /// Whether the stored lookup value needs a `_type` companion column (several targets).
    pub fn is_polymorphic(&self) -> bool {
        self.targets.len() > 1
    }
}

/// The relationship behind one target of a lookup column.
#[derive(Debug, Clone)]
pub struct LookupNav {
    /// Target table.
    pub target: String,
    /// Relationship schema name (also the collection-valued nav property on the target).
    pub relationship: String,
    /// Single-valued navigation property on the table holding the lookup.
    pub nav: String,
}

/// A 1:N relationship (`OneToManyRelationshipMetadata`), derived from a lookup column.
#[derive(Debug, Clone)]
pub struct Relationship {
    /// Schema name (e.g. `contact_customer_accounts`).
    pub schema_name: String,
    /// The "one" side table.
    pub referenced_entity: String,
    /// Its primary key.
    pub referenced_attribute: String,
    /// The "many" side table (holds the lookup).
    pub referencing_entity: String,
    /// The lookup column.
    pub referencing_attribute: String,
    /// Collection-valued navigation property on the referenced table.
    pub referenced_nav: String,
    /// Single-valued navigation property on the referencing table.
    pub referencing_nav: String,
    /// Stable metadata id.
    pub metadata_id: Uuid,
    /// Whether the relationship is custom.
    pub is_custom: bool,
}

/// Table ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Owned by a user or team.
    UserOwned,
    /// Owned by the organization.
    OrganizationOwned,
    /// Owned by a business unit.
    BusinessOwned,
}

impl Ownership {
    /// The `OwnershipTypes` enum text.
    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::UserOwned => "UserOwned",
            Ownership::OrganizationOwned => "OrganizationOwned",
            Ownership::BusinessOwned => "BusinessOwned",
        }
    }
}

/// An alternate key (`EntityKeyMetadata`).
#[derive(Debug, Clone)]
pub struct AlternateKey {
    /// Logical name of the key.
    pub logical_name: String,
    /// Key columns.
    pub attributes: Vec<String>,
}

/// One table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Logical name.
    pub logical_name: String,
    /// Schema name.
    pub schema_name: String,
    /// Entity set name used in URLs.
    pub set_name: String,
    /// Display name.
    pub display_name: String,
    /// Plural display name.
    pub display_collection_name: String,
    /// Description.
    pub description: String,
    /// Primary key column.
    pub primary_id: String,
    /// Primary name column.
    pub primary_name: String,
    /// Object type code.
    pub object_type_code: i32,
    /// Ownership.
    pub ownership: Ownership,
    /// Custom table.
    pub is_custom: bool,
    /// Change tracking enabled.
    pub change_tracking: bool,
    /// Columns in definition order.
    pub columns: Vec<Column>,
    /// Alternate keys.
    pub keys: Vec<AlternateKey>,
    /// Stable metadata id.
    pub metadata_id: Uuid,
    index: HashMap<String, usize>,
}

impl Table {
    /// The column with this logical name.
    pub fn column(&self, logical_name: &str) -> Option<&Column> {
        self.index.get(logical_name).map(|&i| &self.columns[i])
    }

    /// The column behind a Web API property name (`name`, or `_parentcustomerid_value`).
    pub fn column_by_property(&self, property: &str) -> Option<&Column> {
        if let Some(inner) = property.strip_prefix('_').and_then(|p| p.strip_suffix("_value")) {
            return self.column(inner).filter(|c| c.kind.is_lookup());
        }
        self.column(property).filter(|c| !c.kind.is_lookup())
    }

    /// The primary key column.
    pub fn primary_id_column(&self) -> &Column {
        self.column(&self.primary_id).expect("primary id column exists")
    }

    /// Privilege name for `access` (e.g. `prvReadAccount`).
    pub fn privilege_name(&self, access: crate::security::Access) -> String {
        format!("prv{}{}", access.verb(), self.schema_name)
    }
}

/// All tables and relationships.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Tables in definition order.
    pub tables: Vec<Table>,
    /// Relationships (1:N).
    pub relationships: Vec<Relationship>,
    by_logical: HashMap<String, usize>,
    by_set: HashMap<String, usize>,
}

impl Schema {
    /// The emulator's built-in tables: the CRM tables, then the platform tables.
    pub fn builtin() -> Self {
        let mut all = tables::all();
        all.extend(platform_tables::all());
        Self::from_tables(all)
    }

    fn from_tables(tables: Vec<Table>) -> Self {
        let relationships = builder::derive_relationships(&tables);
        let by_logical = tables.iter().enumerate().map(|(i, t)| (t.logical_name.clone(), i)).collect();
        let by_set = tables.iter().enumerate().map(|(i, t)| (t.set_name.clone(), i)).collect();
        Self { tables, relationships, by_logical, by_set }
    }

    /// The table with this logical name.
    pub fn table(&self, logical_name: &str) -> Option<&Table> {
        self.by_logical.get(logical_name).map(|&i| &self.tables[i])
    }

    /// The table with this entity set name (case-sensitive, as Dataverse).
    pub fn table_by_set(&self, set_name: &str) -> Option<&Table> {
        self.by_set.get(set_name).map(|&i| &self.tables[i])
    }

    /// Relationships in which `table` is the referencing (many) side.
    pub fn many_to_one(&self, table: &str) -> impl Iterator<Item = &Relationship> {
        self.relationships.iter().filter(move |r| r.referencing_entity == table)
    }

    /// Relationships in which `table` is the referenced (one) side.
    pub fn one_to_many(&self, table: &str) -> impl Iterator<Item = &Relationship> {
        self.relationships.iter().filter(move |r| r.referenced_entity == table)
    }

    /// The single-valued navigation property `nav` of `table`.
    pub fn single_nav(&self, table: &str, nav: &str) -> Option<&Relationship> {
        self.many_to_one(table).find(|r| r.referencing_nav == nav)
    }

    /// The collection-valued navigation property `nav` of `table`.
    pub fn collection_nav(&self, table: &str, nav: &str) -> Option<&Relationship> {
        self.one_to_many(table).find(|r| r.referenced_nav == nav)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schema_is_consistent() {
        let s = Schema::builtin();
        for name in [
            "account",
            "contact",
            "lead",
            "opportunity",
            "systemuser",
            "businessunit",
            "team",
            "new_widget",
            "sdkmessage",
            "sdkmessagefilter",
        ] {
            let t = s.table(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(t.column(&t.primary_id).unwrap().is_primary_id);
            assert!(t.column(&t.primary_name).unwrap().is_primary_name);
            for c in &t.columns {
                for target in &c.targets {
                    assert!(s.table(target).is_some(), "{name}.{} targets unknown {target}", c.logical_name);
                }
            }
        }
        let w = s.table("new_widget").unwrap();
        let kinds: std::collections::HashSet<_> = w.columns.iter().map(|c| c.kind).collect();
        assert_eq!(kinds.len(), 18, "custom table must hold every attribute type");
        let r = s.single_nav("contact", "parentcustomerid_account").unwrap();
        assert_eq!(r.schema_name, "contact_customer_accounts");
        assert_eq!(
            s.collection_nav("account", "contact_customer_accounts").unwrap().referencing_attribute,
            "parentcustomerid"
        );
        assert_eq!(s.table_by_set("opportunities").unwrap().logical_name, "opportunity");
        let r = s.single_nav("sdkmessagefilter", "sdkmessageid").unwrap();
        assert_eq!(
            (r.schema_name.as_str(), r.referenced_entity.as_str()),
            ("sdkmessageid_sdkmessagefilter", "sdkmessage")
        );
        assert!(s.collection_nav("sdkmessage", "sdkmessageid_sdkmessagefilter").is_some());
        assert_eq!(s.table_by_set("sdkmessagefilters").unwrap().object_type_code, 4607);
        assert_eq!(s.table("sdkmessage").unwrap().privilege_name(crate::security::Access::Read), "prvReadSdkMessage");
        // Navigation property names are unique per table, except `ownerid`, which points to
        // systemuser or team through one navigation property typed `principal`.
        let others: Vec<_> = s.relationships.iter().filter(|r| r.referencing_attribute != "ownerid").collect();
        let names: std::collections::HashSet<_> =
            others.iter().map(|r| (&r.referencing_entity, &r.referencing_nav)).collect();
        assert_eq!(names.len(), others.len(), "navigation property names are unique per table");
    }
}
