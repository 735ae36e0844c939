//! The data entities of the emulated Finance & Operations environment, kept as data: one
//! table of entity specs ([`ENTITIES`]) and one of enums ([`ENUMS`]). The SQL tables, the seed,
//! `$metadata`, the metadata service, query translation and write validation all read these
//! specs, so adding an entity means adding a spec here (and rows in the seed).

/// The namespace of entity types and enums in `$metadata` and in enum literals.
pub const NAMESPACE: &str = "Microsoft.Dynamics.DataEntities";

/// An F&O data type, as the metadata service's `DataType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// Text (compared case-insensitively, as SQL Server's default collation does).
    String,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// Decimal number (`Edm.Decimal`).
    Real,
    /// A date without time: travels as midday UTC (`2024-01-31T12:00:00Z`).
    Date,
    /// A UTC date-time with whole seconds.
    UtcDateTime,
    /// A member of the named enum (see [`ENUMS`]).
    Enum(&'static str),
    /// A GUID.
    Guid,
}

impl DataType {
    /// The metadata service's `DataType` value.
    pub fn name(self) -> &'static str {
        match self {
            DataType::String => "String",
            DataType::Int32 => "Int32",
            DataType::Int64 => "Int64",
            DataType::Real => "Real",
            DataType::Date => "Date",
            DataType::UtcDateTime => "UtcDateTime",
            DataType::Enum(_) => "Enum",
            DataType::Guid => "Guid",
        }
    }

    /// The EDM type in `$metadata` (F&O publishes dates as `Edm.DateTimeOffset`).
    pub fn edm(self) -> String {
        match self {
            DataType::String => "Edm.String".into(),
            DataType::Int32 => "Edm.Int32".into(),
            DataType::Int64 => "Edm.Int64".into(),
            DataType::Real => "Edm.Decimal".into(),
            DataType::Date | DataType::UtcDateTime => "Edm.DateTimeOffset".into(),
            DataType::Enum(e) => format!("{NAMESPACE}.{e}"),
            DataType::Guid => "Edm.Guid".into(),
        }
    }

    /// Whether values compare as numbers (and may take part in arithmetic).
    pub fn is_numeric(self) -> bool {
        matches!(self, DataType::Int32 | DataType::Int64 | DataType::Real)
    }
}

/// A property of a data entity.
#[derive(Debug)]
pub struct Field {
    /// Property name.
    pub name: &'static str,
    /// Data type.
    pub data_type: DataType,
    /// Extended data type (the metadata service's `TypeName` for non-enum fields).
    pub edt: &'static str,
    /// Label text (en-us), used in metadata and infolog messages.
    pub label: &'static str,
    /// Must be given on create.
    pub mandatory: bool,
    /// Maintained by the server (created/modified stamps): read-only for clients.
    pub system: bool,
    /// A value that must exist in another entity of the same company: (entity, field).
    pub references: Option<(&'static str, &'static str)>,
}

/// A navigation property (for `$expand` and `$metadata`).
#[derive(Debug)]
pub struct Navigation {
    /// Property name.
    pub name: &'static str,
    /// Public entity name of the related entity.
    pub target: &'static str,
    /// A collection (`Cardinality: Multiple`) rather than one record.
    pub many: bool,
    /// Name of the relation the navigation follows.
    pub relation: &'static str,
    /// (property here, property of the related entity) pairs that join the two.
    pub constraints: &'static [(&'static str, &'static str)],
}

/// A data entity.
#[derive(Debug)]
pub struct Entity {
    /// Public entity name (the entity type in `$metadata`), e.g. `CustomerV3`.
    pub name: &'static str,
    /// Public collection name (the entity set), e.g. `CustomersV3`.
    pub collection: &'static str,
    /// AOT name, e.g. `CustCustomerV3Entity`.
    pub internal: &'static str,
    /// Label text.
    pub label: &'static str,
    /// Entity category of the metadata service (`Master`, `Reference`, `Document`, ...).
    pub category: &'static str,
    /// Rows belong to a company (`dataAreaId`).
    pub company: bool,
    /// Key properties in key order (`dataAreaId` first for company-scoped entities).
    pub keys: &'static [&'static str],
    /// Every property, keys included.
    pub fields: &'static [Field],
    /// Navigation properties.
    pub navigations: &'static [Navigation],
}

impl Entity {
    /// The property called `name` (case-sensitive, as OData is).
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The navigation property called `name`.
    pub fn navigation(&self, name: &str) -> Option<&'static Navigation> {
        self.navigations.iter().find(|n| n.name == name)
    }

    /// Whether `name` is a key property.
    pub fn is_key(&self, name: &str) -> bool {
        self.keys.contains(&name)
    }

    /// The SQL table holding the entity's rows.
    pub fn table(&self) -> &'static str {
        self.name
    }
}

/// An enum and its members.
#[derive(Debug)]
pub struct EnumDef {
    /// Enum name, e.g. `NoYes`.
    pub name: &'static str,
    /// Label text.
    pub label: &'static str,
    /// (member, value) in value order.
    pub members: &'static [(&'static str, i64)],
}

impl EnumDef {
    /// The value of member `name` (case-sensitive).
    pub fn value(&self, name: &str) -> Option<i64> {
        self.members.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// The member with value `v`.
    pub fn member(&self, v: i64) -> Option<&'static str> {
        self.members.iter().find(|(_, x)| *x == v).map(|(n, _)| *n)
    }
}

/// The public entity called `name`.
pub fn entity(name: &str) -> Option<&'static Entity> {
    ENTITIES.iter().find(|e| e.name == name)
}

/// The entity served as collection `set` (case-sensitive, as on the real service).
pub fn entity_by_collection(set: &str) -> Option<&'static Entity> {
    ENTITIES.iter().find(|e| e.collection == set)
}

/// The enum called `name`.
pub fn enum_def(name: &str) -> Option<&'static EnumDef> {
    ENUMS.iter().find(|e| e.name == name)
}

/// Every enum.
pub static ENUMS: &[EnumDef] = &[
    EnumDef { name: "NoYes", label: "No/Yes", members: &[("No", 0), ("Yes", 1)] },
    EnumDef { name: "CustVendorPartyType", label: "Party type", members: &[("Person", 0), ("Organization", 1)] },
    EnumDef { name: "CustVendorBlocked", label: "On hold", members: &[("No", 0), ("Invoice", 1), ("All", 2)] },
    EnumDef {
        name: "VendorBlocked",
        label: "Vendor on hold",
        members: &[("No", 0), ("Invoice", 1), ("All", 2), ("Payment", 3), ("Requisition", 4), ("Never", 5)],
    },
    EnumDef { name: "EcoResProductType", label: "Product type", members: &[("Item", 1), ("Service", 2)] },
    EnumDef {
        name: "SalesStatus",
        label: "Sales status",
        members: &[("None", 0), ("Backorder", 1), ("Delivered", 2), ("Invoiced", 3), ("Canceled", 4)],
    },
    EnumDef {
        name: "HcmPersonGender",
        label: "Gender",
        members: &[("None", 0), ("Male", 1), ("Female", 2), ("NonSpecific", 3)],
    },
    EnumDef { name: "HcmWorkerType", label: "Worker type", members: &[("Employee", 0), ("Contractor", 1)] },
];

const fn f(name: &'static str, data_type: DataType, edt: &'static str, label: &'static str) -> Field {
    Field { name, data_type, edt, label, mandatory: false, system: false, references: None }
}

const fn key(name: &'static str, data_type: DataType, edt: &'static str, label: &'static str) -> Field {
    Field { name, data_type, edt, label, mandatory: true, system: false, references: None }
}

const fn system(name: &'static str, edt: &'static str, label: &'static str) -> Field {
    Field { name, data_type: DataType::UtcDateTime, edt, label, mandatory: false, system: true, references: None }
}

const fn refers(field: Field, entity: &'static str, target: &'static str) -> Field {
    Field { references: Some((entity, target)), ..field }
}

const DATA_AREA: Field = key("dataAreaId", DataType::String, "DataAreaId", "Company");
const NOYES: DataType = DataType::Enum("NoYes");

/// Every public data entity.
pub static ENTITIES: &[Entity] = &[
    Entity {
        name: "LegalEntity",
        collection: "LegalEntities",
        internal: "OMLegalEntityEntity",
        label: "Legal entities",
        category: "Reference",
        company: false,
        keys: &["LegalEntityId"],
        fields: &[
            key("LegalEntityId", DataType::String, "DataAreaId", "Company"),
            f("Name", DataType::String, "Name", "Name"),
            f("AddressCountryRegionId", DataType::String, "LogisticsAddressCountryRegionId", "Country/region"),
        ],
        navigations: &[],
    },
    Entity {
        name: "CustomerGroup",
        collection: "CustomerGroups",
        internal: "CustCustomerGroupEntity",
        label: "Customer groups",
        category: "Reference",
        company: true,
        keys: &["dataAreaId", "CustomerGroupId"],
        fields: &[
            DATA_AREA,
            key("CustomerGroupId", DataType::String, "CustGroupId", "Customer group"),
            f("Description", DataType::String, "Description", "Description"),
            f("PaymentTermId", DataType::String, "PaymTermId", "Terms of payment"),
            f("IsSalesTaxIncludedInPrice", NOYES, "NoYes", "Prices include sales tax"),
        ],
        navigations: &[],
    },
    Entity {
        name: "CustomerV3",
        collection: "CustomersV3",
        internal: "CustCustomerV3Entity",
        label: "Customers V3",
        category: "Master",
        company: true,
        keys: &["dataAreaId", "CustomerAccount"],
        fields: &[
            DATA_AREA,
            key("CustomerAccount", DataType::String, "CustAccount", "Customer account"),
            f("OrganizationName", DataType::String, "Name", "Organization name"),
            refers(
                Field { mandatory: true, ..f("CustomerGroupId", DataType::String, "CustGroupId", "Customer group") },
                "CustomerGroup",
                "CustomerGroupId",
            ),
            f("SalesCurrencyCode", DataType::String, "CurrencyCode", "Currency"),
            f("CreditLimit", DataType::Real, "AmountMST", "Credit limit"),
            f("CustomerType", DataType::Enum("CustVendorPartyType"), "CustVendorPartyType", "Type"),
            f("OnHoldStatus", DataType::Enum("CustVendorBlocked"), "CustVendorBlocked", "Invoice and delivery on hold"),
            f("IsSalesTaxIncludedInPrice", NOYES, "NoYes", "Prices include sales tax"),
            f("AddressCountryRegionId", DataType::String, "LogisticsAddressCountryRegionId", "Country/region"),
            system("CreatedDateTime", "CreatedDateTime", "Created date and time"),
            system("ModifiedDateTime", "ModifiedDateTime", "Modified date and time"),
        ],
        navigations: &[],
    },
    Entity {
        name: "VendorV2",
        collection: "VendorsV2",
        internal: "VendVendorV2Entity",
        label: "Vendors V2",
        category: "Master",
        company: true,
        keys: &["dataAreaId", "VendorAccountNumber"],
        fields: &[
            DATA_AREA,
            key("VendorAccountNumber", DataType::String, "VendAccount", "Vendor account"),
            f("VendorOrganizationName", DataType::String, "Name", "Organization name"),
            Field { mandatory: true, ..f("VendorGroupId", DataType::String, "VendGroupId", "Group") },
            f("CurrencyCode", DataType::String, "CurrencyCode", "Currency"),
            f("OnHoldStatus", DataType::Enum("VendorBlocked"), "VendorBlocked", "Vendor hold"),
            system("ModifiedDateTime", "ModifiedDateTime", "Modified date and time"),
        ],
        navigations: &[],
    },
    Entity {
        name: "ReleasedProductV2",
        collection: "ReleasedProductsV2",
        internal: "EcoResReleasedProductV2Entity",
        label: "Released products V2",
        category: "Master",
        company: true,
        keys: &["dataAreaId", "ItemNumber"],
        fields: &[
            DATA_AREA,
            key("ItemNumber", DataType::String, "ItemId", "Item number"),
            f("ProductName", DataType::String, "EcoResProductName", "Product name"),
            f("ProductType", DataType::Enum("EcoResProductType"), "EcoResProductType", "Product type"),
            f("SalesPrice", DataType::Real, "PriceCur", "Sales price"),
            f("ItemModelGroupId", DataType::String, "InventModelGroupId", "Item model group"),
        ],
        navigations: &[],
    },
    Entity {
        name: "SalesOrderHeaderV2",
        collection: "SalesOrderHeadersV2",
        internal: "SalesOrderHeaderV2Entity",
        label: "Sales order headers V2",
        category: "Document",
        company: true,
        keys: &["dataAreaId", "SalesOrderNumber"],
        fields: &[
            DATA_AREA,
            key("SalesOrderNumber", DataType::String, "SalesIdBase", "Sales order"),
            refers(
                Field {
                    mandatory: true,
                    ..f("OrderingCustomerAccountNumber", DataType::String, "CustAccount", "Customer account")
                },
                "CustomerV3",
                "CustomerAccount",
            ),
            f("SalesOrderStatus", DataType::Enum("SalesStatus"), "SalesStatus", "Status"),
            f("CurrencyCode", DataType::String, "CurrencyCode", "Currency"),
            f("RequestedShippingDate", DataType::Date, "SalesShippingDateRequested", "Requested ship date"),
            system("OrderCreationDateTime", "CreatedDateTime", "Created date and time"),
            system("ModifiedDateTime", "ModifiedDateTime", "Modified date and time"),
        ],
        navigations: &[Navigation {
            name: "SalesOrderLines",
            target: "SalesOrderLine",
            many: true,
            relation: "SalesOrderHeaderV2_SalesOrderLine",
            constraints: &[("dataAreaId", "dataAreaId"), ("SalesOrderNumber", "SalesOrderNumber")],
        }],
    },
    Entity {
        name: "SalesOrderLine",
        collection: "SalesOrderLines",
        internal: "SalesOrderLineEntity",
        label: "Sales order lines",
        category: "Document",
        company: true,
        keys: &["dataAreaId", "InventoryLotId"],
        fields: &[
            DATA_AREA,
            key("InventoryLotId", DataType::String, "InventTransId", "Lot ID"),
            refers(
                Field { mandatory: true, ..f("SalesOrderNumber", DataType::String, "SalesIdBase", "Sales order") },
                "SalesOrderHeaderV2",
                "SalesOrderNumber",
            ),
            f("LineNumber", DataType::Real, "LineNum", "Line number"),
            refers(f("ItemNumber", DataType::String, "ItemId", "Item number"), "ReleasedProductV2", "ItemNumber"),
            f("OrderedSalesQuantity", DataType::Real, "SalesOrderedQty", "Quantity"),
            f("SalesPrice", DataType::Real, "SalesPrice", "Unit price"),
            f("LineAmount", DataType::Real, "LineAmount", "Net amount"),
            f("SalesOrderLineStatus", DataType::Enum("SalesStatus"), "SalesStatus", "Line status"),
        ],
        navigations: &[Navigation {
            name: "SalesOrderHeader",
            target: "SalesOrderHeaderV2",
            many: false,
            relation: "SalesOrderHeaderV2_SalesOrderLine",
            constraints: &[("dataAreaId", "dataAreaId"), ("SalesOrderNumber", "SalesOrderNumber")],
        }],
    },
    Entity {
        name: "Worker",
        collection: "Workers",
        internal: "HcmWorkerEntity",
        label: "Workers",
        category: "Master",
        company: false,
        keys: &["PersonnelNumber"],
        fields: &[
            key("PersonnelNumber", DataType::String, "HcmPersonnelNumberId", "Personnel number"),
            f("Name", DataType::String, "DirPartyName", "Name"),
            f("FirstName", DataType::String, "FirstName", "First name"),
            f("LastName", DataType::String, "LastName", "Last name"),
            f("BirthDate", DataType::Date, "HcmBirthDate", "Birth date"),
            f("Gender", DataType::Enum("HcmPersonGender"), "HcmPersonGender", "Gender"),
            f("WorkerType", DataType::Enum("HcmWorkerType"), "HcmWorkerType", "Worker type"),
            system("ModifiedDateTime", "ModifiedDateTime", "Modified date and time"),
        ],
        navigations: &[],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_consistent() {
        for e in ENTITIES {
            assert_eq!(e.company, e.keys.first() == Some(&"dataAreaId"), "{}", e.name);
            for k in e.keys {
                assert!(e.field(k).is_some(), "{}: key {k}", e.name);
            }
            for f in e.fields {
                if let DataType::Enum(n) = f.data_type {
                    assert!(enum_def(n).is_some(), "{}.{}: enum {n}", e.name, f.name);
                }
                if let Some((t, tf)) = f.references {
                    assert!(entity(t).and_then(|t| t.field(tf)).is_some(), "{}.{}", e.name, f.name);
                }
            }
            for n in e.navigations {
                let t = entity(n.target).expect("navigation target");
                for (a, b) in n.constraints {
                    assert!(e.field(a).is_some() && t.field(b).is_some(), "{}.{}", e.name, n.name);
                }
            }
            assert_eq!(entity_by_collection(e.collection).map(|x| x.name), Some(e.name));
        }
        assert_eq!(enum_def("NoYes").and_then(|e| e.value("Yes")), Some(1));
        assert!(entity_by_collection("customersv3").is_none(), "entity sets are case-sensitive");
    }
}
